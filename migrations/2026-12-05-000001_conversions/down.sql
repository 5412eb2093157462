DROP FUNCTION mailtrail_rebuild_conversion_rollups();
DROP FUNCTION mailtrail_reattribute_all_conversions(integer);
DROP FUNCTION mailtrail_attribute_conversions(bigint[], bigint[], integer);
DROP TABLE conversions;
DROP FUNCTION mailtrail_conversion_rollup_inserted();
DROP FUNCTION mailtrail_conversion_rollup_updated();
DROP FUNCTION mailtrail_conversion_rollup_deleted();
DROP TABLE conversion_rollups;
DROP INDEX email_events_human_engagement_idx;
