//! The `pghook` command line, end to end.

use std::process::{Command, Output};

use pghook_tests::Cluster;

use crate::pghook_binary;

/// Run the `pghook` binary in `root` with `env` added.
pub(crate) fn pghook(root: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(pghook_binary());
    cmd.current_dir(root).args(args).env_remove("PGHOOK_CONN_ID").env_remove("PGHOOK_CONNECTIONS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running pghook")
}

/// What a successful run printed, trimmed.
pub(crate) fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "pghook failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn connections_from_environment_and_file() {
    let root = tempfile::tempdir().unwrap();
    // AIRFLOW_CONN_<CONN_ID>, upper-cased.
    let env = [("AIRFLOW_CONN_MY_DB", "postgres://u:p@db.example:5433/app?sslmode=require")];
    let out = pghook(root.path(), &env, &["explain", "--conn-id", "my_db"]);
    assert_eq!(
        stdout(&out),
        r#"{"host":"db.example","user":"u","password":"***","dbname":"app","port":5433,"sslmode":"require"}"#
    );
    std::fs::write(
        root.path().join("conns.json"),
        r#"{"from_file": {"conn_type": "postgres", "host": "h", "login": "u", "password": "pw", "schema": "d"}}"#,
    )
    .unwrap();
    let out = pghook(root.path(), &[], &["--connections", "conns.json", "--conn-id", "from_file", "uri"]);
    assert_eq!(stdout(&out), "postgresql://u:***@h/d");
    let out =
        pghook(root.path(), &[], &["--connections", "conns.json", "--conn-id", "from_file", "uri", "--show-password"]);
    assert_eq!(stdout(&out), "postgresql://u:pw@h/d");
    // An RDS token is signed offline: no server is needed.
    let env = [
        ("AIRFLOW_CONN_RDS", "postgres://alice@db.abc.eu-west-1.rds.amazonaws.com/app?iam=true&aws_conn_id=aws_rds"),
        ("AIRFLOW_CONN_AWS_RDS", "aws://AKIDEXAMPLE:secret@/?region_name=eu-west-1"),
    ];
    let token: serde_json::Value =
        serde_json::from_str(&stdout(&pghook(root.path(), &env, &["--conn-id", "rds", "iam-token"]))).unwrap();
    assert_eq!((token["user"].as_str(), token["port"].as_u64()), (Some("alice"), Some(5432)));
    assert!(token["password"].as_str().unwrap().contains("X-Amz-Signature="), "{token}");
    // Failures: non-zero exit, one line naming the problem, no secret.
    let out = pghook(root.path(), &[], &["explain", "--conn-id", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "pghook: error: The conn_id `nope` isn't defined\n");
    let env = [("AIRFLOW_CONN_BAD", "postgres://u:hunter2@h:notaport/db")];
    let out = pghook(root.path(), &env, &["test-connection", "--conn-id", "bad"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("connection `bad`: port") && !err.contains("hunter2"), "{err}");
}

/// `explain` and `test-connection` print no password on stdout or stderr,
/// however the URI in AIRFLOW_CONN_X writes it.
#[test]
fn passwords_are_never_printed() {
    let root = tempfile::tempdir().unwrap();
    for (uri, explains) in [
        ("postgres://user:Pa55word#x@127.0.0.1:5432/db", false),
        ("postgres://user:p?Pa55word@127.0.0.1/db", false),
        ("postgres://user:a/Pa55word@127.0.0.1/db", false),
        ("postgres://user:12/Pa55word@127.0.0.1/db", false),
        ("postgres://user:Pa55word", false),
        ("postgres://u:x@y:Pa55word@127.0.0.1:1/db", true),
        (r#"{"conn_type": "postgres", "host": "127.0.0.1", "password": 55512345}"#, false),
    ] {
        for (command, succeeds) in [("explain", explains), ("test-connection", false)] {
            let out = pghook(root.path(), &[("AIRFLOW_CONN_X", uri)], &["--conn-id", "x", command]);
            assert_eq!(out.status.success(), succeeds, "{uri} {command}: {out:?}");
            for printed in [&out.stdout, &out.stderr] {
                let printed = String::from_utf8_lossy(printed);
                assert!(!printed.contains("Pa55word") && !printed.contains("5551234"), "{uri} {command}: {printed}");
            }
        }
    }
}

#[test]
fn data_commands_against_a_real_server() {
    let pg = Cluster::plain();
    let db = pg.create_database("cli_data");
    let root = tempfile::tempdir().unwrap();
    let uri = pg.uri_db(&db, "");
    let env = [("AIRFLOW_CONN_POSTGRES_DEFAULT", uri.as_str())];
    let run = |args: &[&str]| pghook(root.path(), &env, args);
    assert_eq!(stdout(&run(&["test-connection"])), "Connection successfully tested");
    stdout(&run(&["run", "--sql", "create table t (id int, name text)"]));
    std::fs::write(root.path().join("in.tsv"), "1\tone\n2\ttwo\n").unwrap();
    let out = run(&["bulk-load", "--table", "t", "--file", "in.tsv"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("loaded 2 rows"), "{out:?}");
    let out = run(&["records", "--sql", "select * from t where id > %s order by id", "--params", "[0]"]);
    assert_eq!(stdout(&out), r#"[[1,"one"],[2,"two"]]"#);
    let out = run(&["records", "--sql", "select id, name from t order by id", "--format", "table"]);
    assert_eq!(stdout(&out), "id | name\n---+-----\n1  | one \n2  | two \n(2 rows)");
    stdout(&run(&["run", "--sql", "alter table t add primary key (id)"]));
    assert_eq!(stdout(&run(&["primary-key", "--table", "t"])), r#"["id"]"#);
    assert_eq!(stdout(&run(&["primary-key", "--table", "t", "--schema", "nowhere"])), "null");
    // insert_rows from JSON lines, typed values as in --params.
    stdout(&run(&["run", "--sql", "create table ins (id int primary key, day date)"]));
    std::fs::write(root.path().join("rows.jsonl"), "[1, {\"$date\": \"2024-02-29\"}]\n\n[2, null]\n").unwrap();
    let out = run(&["insert-rows", "--table", "ins", "--file", "rows.jsonl", "--target-fields", "id,day", "--fast"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("inserted 2 rows into ins"), "{out:?}");
    let out = run(&["records", "--sql", "select id, day + 1 from ins order by id"]);
    assert_eq!(stdout(&out), r#"[[1,"2024-03-01"],[2,null]]"#);
    std::fs::write(root.path().join("bad.jsonl"), "[1]\n{\"id\": 2}\n").unwrap();
    let out = run(&["insert-rows", "--table", "ins", "--file", "bad.jsonl"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.jsonl line 2"), "{out:?}");
    // get_first: the row itself, or null, as Airflow's tuple or None.
    let out = run(&["records", "--first", "--sql", "select count(*) as n from t"]);
    assert_eq!(stdout(&out), "[2]");
    let out = run(&["records", "--first", "--sql", "select 1 where false"]);
    assert_eq!(stdout(&out), "null");
    // Typed parameters as tagged objects.
    let typed = r#"[{"$date": "2024-02-29"}, {"$array": [1, 2]}, {"$bytes": "00ff"}]"#;
    let out = run(&["records", "--sql", "select %s + 1, 2 = ANY(%s), %s", "--params", typed]);
    assert_eq!(stdout(&out), r#"[["2024-03-01",true,"\\x00ff"]]"#);
    // Items of a list are tagged the same way; a list in a list is refused.
    let days = r#"[{"$tuple": [{"$date": "2024-02-29"}, {"$date": "2024-03-01"}]}]"#;
    let out = run(&["records", "--sql", "select date '2024-03-01' in %s", "--params", days]);
    assert_eq!(stdout(&out), "[[true]]");
    let out = run(&["records", "--sql", "select %s", "--params", r#"[{"$array": [{"$array": [1]}]}]"#]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("a $array cannot hold a list"), "{out:?}");
    let out = run(&["records", "--sql", "select %s", "--params", r#"[{"$when": "now"}]"#]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown tag $when"), "{out:?}");
    // json keeps every digit, in arrays too; floats JSON cannot hold go by name.
    let big = r#"select '{"n": 123456789012345678901234567890}'::jsonb as j, array['[1e400]'::json] as a, 'NaN'::float8 as f"#;
    let out = run(&["records", "--sql", big]);
    assert_eq!(stdout(&out), r#"[[{"n": 123456789012345678901234567890},[[1e400]],"NaN"]]"#);
    stdout(&run(&["bulk-dump", "--table", "public.t", "--file", "out.tsv"]));
    assert_eq!(std::fs::read_to_string(root.path().join("out.tsv")).unwrap(), "1\tone\n2\ttwo\n");
    stdout(&run(&["copy-expert", "--sql", "COPY t TO STDOUT WITH CSV", "--file", "out.csv"]));
    assert_eq!(std::fs::read_to_string(root.path().join("out.csv")).unwrap(), "1,one\n2,two\n");
    let out = run(&["run", "--sql", "select 1 as a; select 2 as b", "--split-statements", "--fetch", "all"]);
    assert_eq!(stdout(&out), r#"{"columns":["b"],"rows":[[2]],"row_count":1}"#);
    // The cursor extra shapes rows; the CLI prints dict rows as objects.
    let dict_uri = pg.uri_db(&db, "cursor=realdictcursor");
    let dict_env = [("AIRFLOW_CONN_DICT", dict_uri.as_str())];
    let out = pghook(root.path(), &dict_env, &["--conn-id", "dict", "records", "--sql", "select * from t order by id"]);
    assert_eq!(stdout(&out), r#"[{"id":1,"name":"one"},{"id":2,"name":"two"}]"#);
    // Server notices, on request; parameter values never reach the log.
    let notice = "do $$ begin raise notice 'hello from the server'; end $$";
    let out = run(&["--log-db-messages", "run", "--sql", notice]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pghook: info: NOTICE:  hello from the server"), "{err}");
    let out = run(&["-v", "run", "--sql", "select %s", "--params", r#"["hunter2"]"#]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("Running statement: select %s") && !err.contains("hunter2"), "{err}");
    // A file outside --root is refused.
    let out = run(&["bulk-dump", "--table", "t", "--file", "/tmp/elsewhere.tsv"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("outside the file root"));
    let out = run(&["records", "--sql", "select * from missing_table"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("42P01"));
}

#[test]
fn progress_shows_on_a_terminal_only() {
    let pg = Cluster::plain();
    let db = pg.create_database("cli_progress");
    let root = tempfile::tempdir().unwrap();
    let uri = pg.uri_db(&db, "");
    let env = [("AIRFLOW_CONN_POSTGRES_DEFAULT", uri.as_str())];
    stdout(&pghook(root.path(), &env, &["run", "--sql", "create table p (line text)"]));
    std::fs::write(root.path().join("p.tsv"), "some line\n".repeat(100_000)).unwrap();
    let plain = pghook(root.path(), &env, &["bulk-load", "--table", "p", "--file", "p.tsv"]);
    assert_eq!(String::from_utf8_lossy(&plain.stderr), "pghook: loaded 100000 rows into p\n");
    // `script` gives the command a terminal.
    let command = format!("{} bulk-load --table p --file p.tsv", pghook_binary().display());
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(root.path())
        .env("AIRFLOW_CONN_POSTGRES_DEFAULT", &uri)
        .output()
        .expect("running script");
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    assert!(screen.contains("loading 976.6 KiB / 976.6 KiB (100%)"), "{screen:?}");
    assert!(screen.contains("loaded 100000 rows"), "{screen:?}");
}

#[test]
fn socket_directories_only_by_allow_socket() {
    let pg = Cluster::plain();
    let root = tempfile::tempdir().unwrap();
    let dir = pg.socket_dir.to_str().unwrap();
    let uri = format!("postgres://postgres@{}:{}/postgres", dir.replace('/', "%2F"), pg.port);
    let env = [("AIRFLOW_CONN_POSTGRES_DEFAULT", uri.as_str())];
    // `--allow-host *` (the default) reaches hosts, never socket directories.
    let out = pghook(root.path(), &env, &["test-connection"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("Unix socket directory {dir} is not allowed")), "{err}");
    let out = pghook(root.path(), &env, &["--allow-socket", dir, "test-connection"]);
    assert_eq!(stdout(&out), "Connection successfully tested");
    // The standard directory is allowed by default: a connection without a
    // host gets past the policy (and finds no server there).
    let env = [("AIRFLOW_CONN_POSTGRES_DEFAULT", r#"{"conn_type": "postgres", "login": "u", "port": 1}"#)];
    let out = pghook(root.path(), &env, &["test-connection"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("/var/run/postgresql") && !err.contains("not allowed"), "{err}");
}

#[test]
fn libpq_environment_fills_what_the_connection_leaves_unset() {
    let pg = Cluster::plain();
    let db = pg.create_database("cli_pgenv");
    let root = tempfile::tempdir().unwrap();
    let port = pg.port.to_string();
    // A connection with no host, port, login, password or schema: libpq's variables fill them in.
    let env = [
        ("AIRFLOW_CONN_BARE", r#"{"conn_type": "postgres"}"#),
        ("PGHOST", "127.0.0.1"),
        ("PGPORT", port.as_str()),
        ("PGUSER", pghook_tests::SUPERUSER),
        ("PGPASSWORD", pghook_tests::PASSWORD),
        ("PGDATABASE", db.as_str()),
        ("PGAPPNAME", "from-env"),
        ("PGSSLMODE", "disable"),
    ];
    let sql = "select current_database(), current_setting('application_name')";
    let out = pghook(root.path(), &env, &["--conn-id", "bare", "--allow-host", "127.0.0.1", "records", "--sql", sql]);
    assert_eq!(stdout(&out), format!(r#"[["{db}","from-env"]]"#));
    // The connection's own settings win over the environment.
    let own = r#"{"conn_type": "postgres", "schema": "postgres", "extra": {"application_name": "own"}}"#;
    let env = [&[("AIRFLOW_CONN_BARE", own)], &env[1..]].concat();
    let out = pghook(root.path(), &env, &["--conn-id", "bare", "--allow-host", "127.0.0.1", "records", "--sql", sql]);
    assert_eq!(stdout(&out), r#"[["postgres","own"]]"#);
    // explain is what psycopg2.connect gets: never the environment's values.
    let out = pghook(root.path(), &env, &["--conn-id", "bare", "explain"]);
    assert!(!stdout(&out).contains(pghook_tests::PASSWORD));
}
