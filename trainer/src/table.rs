//! The trainer's CSV outputs, written by the `csv` crate (quoting names that hold commas or quotes):
//! one header and rows of cells, into bytes for [`crate::image_io::write_atomic`].
use anyhow::Result;

/// A CSV table: `header`, then each row (cells already formatted).
pub fn csv_bytes<R, C>(header: &[&str], rows: R) -> Result<Vec<u8>>
where
    R: IntoIterator<Item = Vec<C>>,
    C: AsRef<[u8]>,
{
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(header)?;
    for row in rows {
        w.write_record(&row)?;
    }
    w.into_inner()
        .map_err(|e| anyhow::anyhow!("CSV output: {}", e.error()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn cells_with_commas_and_quotes_are_quoted() {
        let b = super::csv_bytes(
            &["loss", "value"],
            [vec!["l2+0.1*vgg:relu2_2,relu3_3".to_string(), "1".into()]],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(b).unwrap(),
            "loss,value\n\"l2+0.1*vgg:relu2_2,relu3_3\",1\n"
        );
    }
}
