import stat

from loglake.alerts.db import open_alerts_db


def test_the_detections_database_is_private_and_opens_twice(tmp_path):
    first = open_alerts_db(tmp_path)
    first.execute(
        "INSERT INTO alerts (id, rule_id, rule_title, title, level, tags, status, dedup_key, group_values,"
        " first_seen_ms, last_seen_ms, match_count, window_start_ms, window_end_ms, evidence, query,"
        " created_ms, updated_ms) VALUES ('a1', 'r', 'R', 'T', 'high', '[]', 'open', 'k', '{}',"
        " 1, 2, 3, 0, 10, '[]', 'SELECT 1', 5, 5)"
    )
    first.execute("INSERT INTO alert_events (alert_id, kind, at_ms) VALUES ('a1', 'trigger', 5)")
    first.close()
    again = open_alerts_db(tmp_path)
    assert again.execute("SELECT alert_id, kind FROM alert_events").fetchall() == [("a1", "trigger")]
    assert stat.S_IMODE((tmp_path / "alerts.db").stat().st_mode) == 0o600
