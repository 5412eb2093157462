//! `mailtrail conversions import FILE.csv` queues the good lines as the API does (the worker
//! stores each conversion once, whatever the number of imports) and refuses the bad ones by line
//! number; `mailtrail conversions reattribute` applies a new window to every conversion.

use mailtrail_core::EventKind;
use mailtrail_store::conversions::all_conversions;
use mailtrail_testing::{TestApp, event_at, worker_row};

use crate::support::Mailtrail;

const CSV: &str = "\
id,backer_id,project_id,kind,occurred_at,value_cents
p-1,42,7,pledge,2025-11-21T10:00:00Z,2500
p-2,42,7,pledge,2025-11-22T10:00:00Z,
p-3,forty-three,7,pledge,2025-11-22T10:00:00Z,100
p-4,43,7,,2025-11-22T10:00:00Z,100
p-5,43,7,pledge,last week,100
p-1,42,7,pledge,2025-11-21T10:00:00Z,2500
p-6,43,8,add-on,2025-11-23T10:00:00+01:00,999
";

#[tokio::test(flavor = "multi_thread")]
async fn an_import_queues_good_lines_refuses_bad_ones_by_number_and_stores_each_once() {
    let mut app = TestApp::builder().build().await;
    let dir = std::env::temp_dir().join(mailtrail_testing::unique_name("import"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("pledges.csv");
    std::fs::write(&file, CSV).unwrap();
    let import = |app: &TestApp| {
        Mailtrail::new(&["conversions", "import", file.to_str().unwrap()]).redis(app.redis())
    };

    let run = import(&app).run().await;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stdout
            .starts_with("conversions: 4 queued in 1 reports, 3 lines refused\n"),
        "{}",
        run.stdout
    );
    for expected in [
        "line 4: `backer_id` is not an integer",
        "line 5: `kind` is missing",
        "line 6: `occurred_at` is not an RFC 3339 time",
    ] {
        assert!(run.stdout.contains(expected), "{expected}: {}", run.stdout);
    }
    assert!(run.stderr.contains("3 lines"), "{}", run.stderr);
    app.drain().await;
    // Run again: nothing is stored twice.
    import(&app).run().await;
    app.drain().await;

    let mut connection = app.database().connect().await;
    let stored: Vec<_> = all_conversions(&mut connection)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.project_id, c.conversion_id, c.value_cents))
        .collect();
    assert_eq!(
        stored,
        [
            (7, "p-1".to_owned(), Some(2500)),
            (7, "p-2".to_owned(), None),
            (8, "p-6".to_owned(), Some(999)),
        ]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_without_a_required_column_is_refused_whole() {
    let app = TestApp::builder().worker(false).build().await;
    let file = std::env::temp_dir().join(format!("{}.csv", mailtrail_testing::unique_name("cols")));
    std::fs::write(
        &file,
        "id,backer_id,kind,occurred_at\np,1,pledge,2025-11-21T10:00:00Z\n",
    )
    .unwrap();
    let run = Mailtrail::new(&["conversions", "import", file.to_str().unwrap()])
        .redis(app.redis())
        .run()
        .await;
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("`project_id` column"), "{}", run.stderr);
    assert_eq!(app.redis().queued().backlog, 0);
    std::fs::remove_file(&file).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn reattribute_applies_a_new_window_to_every_conversion() {
    let mut app = TestApp::builder().build().await;
    let mut connection = app.database().connect().await;
    // A click three days before the pledge: credited with 7 days, not with 2.
    let click = event_at(EventKind::Clicked, "m@x", "r@x", 1_763_596_800);
    mailtrail_store::write_batch(
        &mut connection,
        &[worker_row(&click, 42, 7, Some("Reminder"))],
        &[],
        7,
    )
    .await
    .unwrap();
    let file = std::env::temp_dir().join(format!("{}.csv", mailtrail_testing::unique_name("re")));
    std::fs::write(
        &file,
        "id,backer_id,project_id,kind,occurred_at\np,42,7,pledge,2025-11-23T00:00:00Z\n",
    )
    .unwrap();
    Mailtrail::new(&["conversions", "import", file.to_str().unwrap()])
        .redis(app.redis())
        .run()
        .await
        .success();
    app.drain().await;
    let credit = async |connection: &mut _| {
        all_conversions(connection).await.unwrap()[0]
            .attributed_by
            .clone()
    };
    assert_eq!(credit(&mut connection).await, "click");

    let run = Mailtrail::new(&["conversions", "reattribute"])
        .database(app.database())
        .env("MAILTRAIL_ATTRIBUTION_WINDOW_DAYS", "2")
        .run()
        .await
        .success();
    assert!(
        run.stdout.contains("window of 2 days; 1 changed"),
        "{}",
        run.stdout
    );
    assert_eq!(credit(&mut connection).await, "none");
    let verified = Mailtrail::new(&["rollups", "verify"])
        .database(app.database())
        .run()
        .await
        .success();
    assert!(verified.stdout.contains("every conversion counter"));
    std::fs::remove_file(&file).unwrap();
}
