-- The order among design items of equal load is now drawn per HIT (design::TieOrder) instead of a random
-- permutation stored at import, so a seeded assignment is exact; the stored column is no longer read.
ALTER TABLE design_items DROP COLUMN shuffle;
