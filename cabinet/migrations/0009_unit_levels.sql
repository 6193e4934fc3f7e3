-- Bridge points after the reform of 1 July 2025 (two levels of local
-- government): the levels become province, department, commune, ward,
-- special_zone and other; `district` stays allowed in the table so rows
-- from before the reform keep it (the application refuses it for new
-- units). Each unit also gets its administrative code and its operator's
-- phone. Portable SQL: runs unchanged on SQLite (3.35+) and PostgreSQL.
--
-- The old column's CHECK cannot be altered in place on SQLite, so the level
-- moves to a new column with the new CHECK, the old column (and its CHECK)
-- is dropped, and the new one takes the old name. Stored values are copied
-- unchanged: every old value is allowed by the new CHECK.

ALTER TABLE bridge_points ADD COLUMN level_0009 TEXT NOT NULL DEFAULT 'other'
    CHECK (level_0009 IN ('province', 'department', 'commune', 'ward', 'special_zone',
                          'other', 'district'));

UPDATE bridge_points SET level_0009 = level;

ALTER TABLE bridge_points DROP COLUMN level;

ALTER TABLE bridge_points RENAME COLUMN level_0009 TO level;

-- The unit's code in the national list of administrative units (or the
-- province's own code for a department); may be empty.
ALTER TABLE bridge_points ADD COLUMN code TEXT NOT NULL DEFAULT '';

-- The phone of the operator who runs the unit's room (links are read to
-- them by phone); may be empty.
ALTER TABLE bridge_points ADD COLUMN operator_phone TEXT NOT NULL DEFAULT '';
