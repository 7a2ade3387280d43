//! copy_expert against hostile statements on a real server, with
//! standard_conforming_strings on and off: every trick that could make the
//! server run a program or use a server-side file is refused, or the guest's
//! rendering of it runs as a plain FROM STDIN / TO STDOUT copy. A marker file
//! that `TO PROGRAM 'touch ...'` would create must never appear.

use std::cell::Cell;
use std::path::{Path, PathBuf};

use pghook::{ErrorKind, Hook, RunOptions, Value};
use pghook_tests::{Cluster, tenant};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestRunner};

/// The input file: a header line that matches `t`'s column, then rows.
const INPUT: &str = "a\n1\n2\n";

/// A path in /tmp that no one else uses, where the server could write.
fn marker(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    PathBuf::from(format!("/tmp/pghook-copy-attack-{name}-{}-{nanos}", std::process::id()))
}

/// A fresh database with table `t (a text)`, an input file `in.txt` under a
/// new root, and two hooks on it: standard_conforming_strings on and off.
async fn setup(pg: &Cluster, name: &str) -> (tempfile::TempDir, Hook, Hook) {
    let db = pg.create_database(name);
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("in.txt"), INPUT).unwrap();
    let off = pg.uri_db(&db, "options=-c%20standard_conforming_strings%3Doff");
    let t = tenant(root.path(), &[("on", &pg.uri_db(&db, "")), ("off", &off)]);
    let (on, off) = (t.hook(pghook::HookArgs::conn_id("on")), t.hook(pghook::HookArgs::conn_id("off")));
    on.run(&["create table t (a text)"], None, RunOptions::default()).await.unwrap();
    for (hook, setting) in [(&on, "on"), (&off, "off")] {
        let r = hook.get_first("show standard_conforming_strings", None).await.unwrap();
        assert_eq!(r.rows.to_values().unwrap()[0][0], Value::Text(setting.into()));
    }
    (root, on, off)
}

/// Nothing the server could have done behind the hook's back happened.
async fn assert_untouched(hook: &Hook, marker: &Path, sql: &str) {
    assert!(!marker.exists(), "the server ran a program for {sql:?}");
    let r = hook.get_first("select count(*) from t where a like '%root:%'", None).await.unwrap();
    assert_eq!(r.rows.to_values().unwrap()[0][0], Value::Int(0), "the server read /etc/passwd for {sql:?}");
}

/// What a statement must come to.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Refused,
    Loads,
    Dumps,
}

#[tokio::test]
async fn hostile_statements_are_refused_or_run_as_client_copies() {
    let pg = Cluster::plain();
    let (root, on, off) = setup(pg, "copy_attacks").await;
    // The control: a program the server is given does run and is seen.
    let control = marker("control");
    on.run(&[&format!("COPY (select 1) TO PROGRAM 'touch {}'", control.display())], None, RunOptions::default())
        .await
        .unwrap();
    assert!(control.exists(), "the marker check would not see a program run");
    std::fs::remove_file(&control).unwrap();

    let m = marker("list");
    let m = m.display();
    use Expect::*;
    let cases: Vec<(String, Expect)> = vec![
        // A -- comment ends at \r: PostgreSQL reads TO PROGRAM as code.
        (format!("COPY t --\rTO PROGRAM 'touch {m}' /*\nFROM STDIN */"), Refused),
        (format!("COPY t FROM STDIN --\rTO PROGRAM 'touch {m}'\n"), Refused),
        // Nested comments.
        (format!("COPY t /* /* */ FROM STDIN */ TO PROGRAM 'touch {m}'"), Refused),
        (format!("COPY t /* /* */ TO PROGRAM 'touch {m}' */ FROM STDIN"), Loads),
        // With standard_conforming_strings off, '\' does not end the string.
        (format!("COPY (select '\\' ) TO STDOUT --') TO PROGRAM 'touch {m}'"), Refused),
        (format!("COPY t FROM STDIN WITH DELIMITER '\\' TO PROGRAM 'touch {m}' --'"), Refused),
        (format!("COPY t FROM STDIN WHERE a = '\\' OR true) TO PROGRAM 'touch {m}' --'"), Refused),
        // Escape, Unicode and dollar-quoted strings hide nothing.
        (format!("COPY (select E'\\' ) TO PROGRAM ''touch {m}'' --') TO STDOUT"), Dumps),
        (format!("COPY (select E'\\u0027) TO PROGRAM \\u0027touch {m}') TO STDOUT"), Dumps),
        (format!("COPY (select U&'!0027) TO PROGRAM !0027touch {m}!0027 --' UESCAPE '!') TO STDOUT"), Dumps),
        (format!("COPY (select U&'\\0027) TO PROGRAM \\0027touch {m}') TO STDOUT"), Dumps),
        (format!("COPY (select $a$ $b$ ) TO PROGRAM 'touch {m}' -- $a$) TO STDOUT"), Dumps),
        (format!("COPY (select $$ */ TO PROGRAM 'touch {m}' /* $$) TO STDOUT"), Dumps),
        // Programs and files in the open, and behind a second statement.
        (format!("COPY t TO PROGRAM 'touch {m}'"), Refused),
        (format!("COPY t FROM PROGRAM 'touch {m}'"), Refused),
        ("COPY t FROM '/etc/passwd'".into(), Refused),
        (format!("COPY t TO '{m}'"), Refused),
        (format!("COPY t FROM STDIN; COPY t TO PROGRAM 'touch {m}'"), Refused),
        (format!("COPY t FROM STDIN WITH (FORMAT csv, PROGRAM 'touch {m}')"), Refused),
        (format!("COPY t FROM STDIN WITH (FORMAT csv) TO PROGRAM 'touch {m}'"), Refused),
        // Hidden in comments, they stay comments.
        (format!("COPY t FROM STDIN /* TO PROGRAM 'touch {m}' */"), Loads),
        (format!("COPY t FROM STDIN -- TO PROGRAM 'touch {m}'"), Loads),
        ("COPY t TO STDOUT /*\r*/ -- \n".into(), Dumps),
        // Legacy and new option forms, and WHERE.
        ("COPY t FROM STDIN WITH CSV HEADER DELIMITER AS ',' NULL AS ''".into(), Loads),
        ("COPY t (a) FROM STDIN (FORMAT csv, HEADER match, QUOTE E'\\'', ESCAPE $$\"$$)".into(), Loads),
        (format!("COPY t FROM STDIN WHERE a <> $$ TO PROGRAM 'touch {m}' $$"), Loads),
        ("COPY t TO STDOUT CSV FORCE QUOTE *".into(), Dumps),
        (format!("COPY (select 'a' --\r'b' AS \"TO PROGRAM 'touch {m}'\") TO STDOUT"), Dumps),
    ];
    for hook in [&on, &off] {
        for (sql, expect) in &cases {
            let outcome = hook.copy_expert(sql, if *expect == Loads { "in.txt" } else { "out.txt" }).await;
            match (expect, outcome) {
                (Refused, Err(e)) => assert_eq!(e.kind(), ErrorKind::Config, "{sql:?}: {e}"),
                (Loads, Ok(o)) => assert!(o.loaded, "{sql:?}"),
                (Dumps, Ok(o)) => assert!(!o.loaded, "{sql:?}"),
                (_, other) => panic!("{sql:?} should be {expect:?}, got {other:?}"),
            }
            assert_untouched(hook, Path::new(&m.to_string()), sql).await;
        }
    }
    // The rendered statement is what ran: the continued string is one value.
    on.copy_expert("COPY (select 'a' --\r'b') TO STDOUT", "ab.txt").await.unwrap();
    assert_eq!(std::fs::read_to_string(root.path().join("ab.txt")).unwrap(), "ab\n");
    // Tokens of a WHERE condition are passed through, but only as a condition:
    // the server can only refuse what follows it.
    let sql = format!("COPY t FROM STDIN WHERE a <> '--' -- \rTO PROGRAM 'touch {m}'");
    let e = off.copy_expert(&sql, "in.txt").await.unwrap_err();
    assert_eq!((e.kind(), e.sqlstate().map(|s| s.code())), (ErrorKind::Database, Some("42601")), "{e}");
    assert_untouched(&off, Path::new(&m.to_string()), &sql).await;
}

/// White space and comments, some hiding COPY clauses.
fn gap(m: &str) -> impl Strategy<Value = String> {
    let benign =
        select(vec![" ", "\n", "\r", "\r\n", "\t", "\x0c", "/* c */", "-- c\n", "-- c\r"]).prop_map(String::from);
    let hostile = select(vec![
        format!("/* /* */ TO PROGRAM 'touch {m}' */"),
        format!("--\rTO PROGRAM 'touch {m}' /*\n"),
        "/*\nFROM STDIN */".into(),
        "*/".into(),
    ]);
    prop::collection::vec(prop_oneof![8 => benign, 1 => hostile], 1..3).prop_map(|parts| parts.concat())
}

/// A string constant in one of PostgreSQL's forms, its body hostile.
fn string(m: &str) -> impl Strategy<Value = String> {
    let body = prop::collection::vec(
        select(vec![
            "a".to_string(),
            ",".into(),
            "'".into(),
            "\\".into(),
            "$$".into(),
            "*/".into(),
            "--".into(),
            "\r".into(),
            format!("') TO PROGRAM 'touch {m}' --"),
        ]),
        0..4,
    )
    .prop_map(|parts| parts.concat());
    (body, 0..6u8).prop_map(|(b, form)| match form {
        0 => format!("'{}'", b.replace('\'', "''")),
        1 => format!("E'{}'", b.replace('\\', "\\\\").replace('\'', "\\'")),
        2 => format!("$q${b}$q$"),
        3 => format!("U&'{}' UESCAPE '!'", b.replace('\'', "''")),
        4 => format!("'{}'\n'{}'", b.replace('\'', "''"), b.replace('\'', "''")),
        _ => format!("'{b}'"),
    })
}

/// A COPY statement on table t, mostly honest, hostile in places.
fn statement(m: &str) -> impl Strategy<Value = String> {
    let honest = select(vec!["FROM STDIN", "TO STDOUT", "from\rstdin", "TO--c\rSTDOUT"]).prop_map(String::from);
    let hostile = select(vec![
        format!("TO PROGRAM 'touch {m}'"),
        format!("FROM PROGRAM 'touch {m}'"),
        "FROM '/etc/passwd'".into(),
        format!("TO '{m}'"),
    ]);
    let target = prop_oneof![5 => honest, 1 => hostile];
    let source = prop_oneof![
        2 => Just("t".to_string()),
        1 => string(m).prop_map(|s| format!("(select {s} as a)")),
    ];
    let option = (
        select(vec!["CSV", "HEADER", "DELIMITER AS", "NULL", "QUOTE", "FORCE QUOTE *", "PROGRAM", "(FORMAT csv, NULL"]),
        string(m),
    )
        .prop_map(|(name, value)| match name {
            "CSV" | "HEADER" | "FORCE QUOTE *" => name.to_string(),
            "(FORMAT csv, NULL" => format!("{name} {value})"),
            _ => format!("{name} {value}"),
        });
    let tail = prop_oneof![
        4 => Just(String::new()),
        1 => string(m).prop_map(|s| format!("WHERE a <> {s}")),
        1 => Just(format!("; COPY t TO PROGRAM 'touch {m}'")),
    ];
    (gap(m), source, gap(m), target, gap(m), prop::option::of(option), gap(m), tail).prop_map(
        |(g1, source, g2, target, g3, option, g4, tail)| {
            format!("{g1}COPY {source}{g2}{target}{g3}{}{g4}{tail}", option.unwrap_or_default())
        },
    )
}

#[test]
fn generated_statements_never_reach_a_program_or_a_server_file() {
    let pg = Cluster::plain();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (root, on, off) = rt.block_on(setup(pg, "copy_attacks_generated"));
    let m = marker("generated");
    let m_text = m.display().to_string();
    let mut runner = TestRunner::new(Config { cases: 64, failure_persistence: None, ..Config::default() });
    let (copied, refused_by_server, refused) = (Cell::new(0), Cell::new(0), Cell::new(0));
    runner
        .run(&(statement(&m_text), any::<bool>()), |(sql, scs_off)| {
            let hook = if scs_off { &off } else { &on };
            // A dump overwrites the input: each case starts from the same file.
            std::fs::write(root.path().join("in.txt"), INPUT).unwrap();
            let outcome = rt.block_on(hook.copy_expert(&sql, "in.txt"));
            match &outcome {
                Ok(_) => copied.set(copied.get() + 1),
                Err(e) if e.kind() == ErrorKind::Config => refused.set(refused.get() + 1),
                // The server may refuse what the guest rendered (a bad option
                // value, a cast), never by running anything.
                Err(e) if e.kind() == ErrorKind::Database => refused_by_server.set(refused_by_server.get() + 1),
                Err(e) => panic!("{sql:?}: unexpected {e}"),
            }
            rt.block_on(assert_untouched(hook, &m, &sql));
            rt.block_on(hook.run(&["delete from t"], None, RunOptions::default())).unwrap();
            Ok(())
        })
        .unwrap();
    let counts = (copied.get(), refused_by_server.get(), refused.get());
    println!("copied, refused by the server, refused by the guest: {counts:?}");
    assert!(counts.0 > 0 && counts.2 > 0, "{counts:?}");
}

/// The rendered statement means what the caller's statement means: each
/// constant, dumped through copy_expert (rendered as E'...'), reads back as
/// the server reads the caller's text in a plain query.
#[tokio::test]
async fn rendered_constants_mean_what_the_server_reads() {
    let pg = Cluster::plain();
    let (root, on, _off) = setup(pg, "copy_attacks_constants").await;
    let constants = [
        r"'it''s'",
        r"E'\x41\101\u00e9\U0001F600\'\q'",
        r"e'\uD83D\uDE00'",
        r"U&'d\0061t\+000061'",
        r"U&'d!0061t!!' UESCAPE '!'",
        "$q$ $$ 'x' -- /* $q$",
        "'a' -- c\r'b'\n'c'",
        "E'a'\n'\\t'",
        "N'x'",
        "B'0101'",
        "X'1F'",
        "1.5e3",
        "U&\"d!0061t\" UESCAPE '!'",
    ];
    for constant in constants {
        let expected = match on.get_first(&format!("select ({constant})::text"), None).await {
            Ok(r) => r.rows.to_values().unwrap()[0][0].clone(),
            // An identifier: the server names a column by it.
            Err(_) => {
                let r = on.get_first(&format!("select 1 as {constant}"), None).await.unwrap();
                Value::Text(r.columns[0].name.clone())
            }
        };
        let Value::Text(expected) = expected else { panic!("{constant}: {expected:?}") };
        let sql = if constant.starts_with("U&\"") {
            format!("COPY (select 1 as {constant}) TO STDOUT WITH (FORMAT csv, HEADER)")
        } else {
            format!("COPY (select ({constant})::text) TO STDOUT WITH (FORMAT csv)")
        };
        on.copy_expert(&sql, "c.csv").await.unwrap_or_else(|e| panic!("{sql:?}: {e}"));
        let got = std::fs::read_to_string(root.path().join("c.csv")).unwrap();
        let first = got.lines().next().unwrap_or_default().trim_matches('"').replace("\"\"", "\"");
        assert_eq!(first, expected, "{constant:?} dumped as {got:?}");
    }
}
