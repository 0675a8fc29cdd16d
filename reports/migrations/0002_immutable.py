from django.db import migrations

# A report, once written, is what was reported: a correction is a new version, never an edit.
FORWARD = """
CREATE OR REPLACE FUNCTION reports_report_immutable() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'reports_report is immutable: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER reports_report_no_update_delete
    BEFORE UPDATE OR DELETE ON reports_report
    FOR EACH ROW EXECUTE FUNCTION reports_report_immutable();
"""

REVERSE = """
DROP TRIGGER IF EXISTS reports_report_no_update_delete ON reports_report;
DROP FUNCTION IF EXISTS reports_report_immutable();
"""


class Migration(migrations.Migration):
    dependencies = [("reports", "0001_initial")]
    operations = [migrations.RunSQL(FORWARD, REVERSE)]
