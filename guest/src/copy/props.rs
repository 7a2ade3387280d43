//! Property: whatever COPY statement a caller writes (comments anywhere,
//! strings in every form, white space including \r, legacy and new options,
//! hostile PROGRAM and file fragments), `copy_expert` either refuses it or
//! renders a statement that, read under both standard_conforming_strings
//! settings, is one COPY FROM STDIN or TO STDOUT with no comment, and that
//! renders to itself again.

use crate::copy::{CopyStatement, Direction};
use crate::lexer::{Scs, Token, TokenKind, lex};
use proptest::prelude::*;
use proptest::sample::select;

/// White space and comments, some of them hiding COPY clauses.
fn gap() -> impl Strategy<Value = String> {
    let benign =
        select(vec![" ", "  ", "\n", "\r", "\r\n", "\t", "\x0c", "\x0b", "/* c */", "/**/", "-- c\n", "-- c\r"]);
    let hostile = select(vec![
        "/* /* nested */ TO PROGRAM 'touch /tmp/m' */",
        "/*\nFROM STDIN */",
        "--\rTO PROGRAM 'touch /tmp/m' /*\n",
        "*/",
        "-- FROM STDIN\n",
    ]);
    let one = prop_oneof![12 => benign, 1 => hostile];
    prop::collection::vec(one, 1..3).prop_map(|parts| parts.concat())
}

/// Text for string bodies, with every character that matters to quoting.
fn body() -> impl Strategy<Value = String> {
    let piece = select(vec![
        "a",
        "x y",
        "'",
        "''",
        "\\",
        "\\'",
        "\"",
        "$",
        "$$",
        "$q$",
        "*/",
        "/*",
        "--",
        "\n",
        "\r",
        ",",
        ";",
        ")",
        "é",
        "!",
        "!0041",
        "\\0041",
        "TO PROGRAM 'touch /tmp/m'",
        "FROM '/etc/passwd'",
    ]);
    prop::collection::vec(piece, 0..5).prop_map(|parts| parts.concat())
}

/// A string constant in one of PostgreSQL's forms, well- or ill-formed.
fn string() -> impl Strategy<Value = String> {
    (body(), 0..9u8).prop_map(|(b, form)| match form {
        0 => format!("'{}'", b.replace('\'', "''")),
        1 => format!("E'{}'", b.replace('\\', "\\\\").replace('\'', "\\'")),
        2 => format!("e'{}'", b.replace('\\', "\\\\").replace('\'', "''")),
        3 => format!("$${b}$$"),
        4 => format!("$q${b}$q$"),
        5 => format!("U&'{}'", b.replace('\'', "''")),
        6 => format!("U&'{}' UESCAPE '!'", b.replace('\'', "''")),
        7 => format!("'{}'\r\n'{}'", b.replace('\'', "''"), b.replace('\'', "''")),
        // Raw: the quotes inside are left as they are.
        _ => format!("'{b}'"),
    })
}

/// A table, perhaps with columns.
fn table() -> impl Strategy<Value = String> {
    select(vec!["t", "T", "public.t", "\"Odd \"\" name\"", "U&\"t!0041\" UESCAPE '!'", "t (a, \"B\")", "s.t(a)"])
        .prop_map(String::from)
}

/// A legacy or new-style option clause.
fn options() -> impl Strategy<Value = String> {
    let legacy = prop::collection::vec(
        (
            select(vec![
                "CSV",
                "BINARY",
                "HEADER",
                "FREEZE",
                "DELIMITER",
                "DELIMITER AS",
                "NULL",
                "NULL AS",
                "QUOTE",
                "ESCAPE AS",
                "ENCODING",
                "FORCE QUOTE *",
                "FORCE QUOTE a, b",
                "FORCE NOT NULL a",
                "FORCE NULL a",
                "PROGRAM",
            ]),
            string(),
            gap(),
        ),
        0..4,
    )
    .prop_map(|items| {
        items
            .into_iter()
            .map(|(name, value, gap)| {
                let takes_string =
                    ["DELIMITER", "NULL", "QUOTE", "ESCAPE", "ENCODING", "PROGRAM"].iter().any(|p| name.starts_with(p));
                if takes_string { format!("{name}{gap}{value} ") } else { format!("{name}{gap}") }
            })
            .collect::<String>()
    });
    let new_style = prop::collection::vec(
        (
            select(vec![
                "FORMAT csv",
                "FORMAT 'text'",
                "format binary",
                "HEADER",
                "HEADER match",
                "header false",
                "FREEZE",
                "DELIMITER",
                "NULL",
                "QUOTE",
                "ESCAPE",
                "ENCODING",
                "FORCE_QUOTE *",
                "FORCE_QUOTE (a, 'b')",
                "force_not_null (\"A\")",
                "FORCE_NULL (a)",
                "PROGRAM",
            ]),
            string(),
            gap(),
        ),
        1..4,
    )
    .prop_map(|items| {
        let items: Vec<String> = items
            .into_iter()
            .map(|(name, value, gap)| {
                let bare = name.chars().all(|c| c.is_ascii_uppercase() || c == '_') && !name.starts_with("FORCE");
                if bare && !matches!(name, "HEADER" | "FREEZE") { format!("{name}{gap}{value}") } else { name.into() }
            })
            .collect();
        format!("({})", items.join(","))
    });
    (prop_oneof![legacy, new_style], any::<bool>(), gap())
        .prop_map(|(options, with, gap)| if with { format!("WITH{gap}{options}") } else { options })
}

/// An expression for a WHERE condition or a query's select list.
fn expression() -> impl Strategy<Value = String> {
    let term = prop_oneof![
        select(vec!["a", "1", "2.5e3", "$1", "a::text", "\"Col\"", "-", "+", "<>", "=", "*", "(", ")", "AND"])
            .prop_map(String::from),
        string(),
    ];
    prop::collection::vec((term, gap()), 1..5)
        .prop_map(|parts| parts.into_iter().map(|(t, g)| format!("{t}{g}")).collect())
}

/// Where the rows go, with the hostile alternatives.
fn target() -> impl Strategy<Value = String> {
    let honest = select(vec!["FROM STDIN", "TO STDOUT", "from\rstdin", "to--c\rstdout"]);
    let hostile = select(vec![
        "TO PROGRAM 'touch /tmp/m'",
        "FROM PROGRAM 'id'",
        "FROM '/etc/passwd'",
        "TO '/tmp/out'",
        "TO\r--\nPROGRAM 'x'",
    ]);
    prop_oneof![5 => honest, 1 => hostile].prop_map(String::from)
}

/// A COPY statement: mostly well formed, hostile in places.
fn statement() -> impl Strategy<Value = String> {
    let source = prop_oneof![
        3 => table(),
        1 => expression().prop_map(|e| format!("(SELECT {e} FROM t)")),
    ];
    let tail = prop_oneof![
        4 => Just(String::new()),
        1 => expression().prop_map(|e| format!("WHERE {e}")),
        1 => select(vec![";", "; COPY t TO PROGRAM 'x'", " TO PROGRAM 'x'", " FROM '/etc/passwd'"]).prop_map(String::from),
    ];
    (gap(), source, gap(), target(), gap(), prop::option::of(options()), gap(), tail, any::<bool>()).prop_map(
        |(g1, source, g2, target, g3, options, g4, tail, upper)| {
            let copy = if upper { "COPY" } else { "copy" };
            format!("{g1}{copy} {source}{g2}{target}{g3}{}{g4}{tail}", options.unwrap_or_default())
        },
    )
}

/// The direction the server would see, read off the rendered tokens
/// without the guest's parser: the first FROM or TO outside parentheses
/// and the word after it.
fn direction_seen(tokens: &[Token]) -> Option<Direction> {
    assert!(tokens[0].is_word("copy"));
    let mut depth = 0i32;
    for (i, t) in tokens.iter().enumerate() {
        if t.is_symbol("(") {
            depth += 1;
        } else if t.is_symbol(")") {
            depth -= 1;
        } else if depth == 0 && (t.is_word("from") || t.is_word("to")) {
            let next = tokens.get(i + 1)?;
            return match (t.is_word("from"), next.is_word("stdin"), next.is_word("stdout")) {
                (true, true, _) => Some(Direction::Load),
                (false, _, true) => Some(Direction::Dump),
                _ => None,
            };
        }
    }
    None
}

/// The property, for one statement; whether it was accepted.
fn check(sql: &str) -> bool {
    let Ok(statement) = CopyStatement::parse(sql) else {
        return false;
    };
    let rendered = statement.render().unwrap_or_else(|e| panic!("{sql:?} parsed but did not render: {}", e.message));
    let on = lex(&rendered, Scs::On).expect("the rendered statement lexes");
    let off = lex(&rendered, Scs::Off).expect("the rendered statement lexes with standard_conforming_strings off");
    assert_eq!(on, off, "{rendered:?} reads differently with standard_conforming_strings off");
    // Nothing between tokens but single spaces: no comment survives.
    let mut end = 0;
    for token in &on {
        assert!(matches!(&rendered[end..token.start], "" | " "), "{rendered:?}: {:?}", &rendered[end..token.start]);
        end = token.end;
    }
    assert_eq!(end, rendered.len(), "{rendered:?} ends with something that is not a token");
    assert!(on.iter().all(|t| t.kind != TokenKind::Symbol || t.text != ";"), "{rendered:?}");
    assert_eq!(direction_seen(&on), Some(statement.direction), "{sql:?} rendered as {rendered:?}");
    let again = CopyStatement::parse(&rendered).expect("the rendered statement parses");
    assert_eq!(again.render().unwrap(), rendered, "rendering is not idempotent for {sql:?}");
    true
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn copy_statements_are_refused_or_rendered_safely(sql in statement()) {
        check(&sql);
    }

    #[test]
    fn arbitrary_fragments_are_refused_or_rendered_safely(
        parts in prop::collection::vec(prop_oneof![statement(), gap(), string(), options(), target()], 1..4)
    ) {
        check(&parts.concat());
    }
}

/// The generator reaches both verdicts often: the property is not vacuous.
#[test]
fn generated_statements_are_both_accepted_and_refused() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = statement();
    let accepted = (0..1000).filter(|_| check(&strategy.new_tree(&mut runner).expect("a statement").current())).count();
    assert!((300..900).contains(&accepted), "{accepted} of 1000 accepted");
}
