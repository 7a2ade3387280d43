//! libpq's client_encoding, as pghook carries it out. psycopg2 decodes
//! every result to the same Python strings whatever the encoding, and
//! Airflow's COPY files are text files in Python's locale encoding (it
//! opens them in text mode; psycopg2 decodes and re-encodes), so the
//! session's encoding shows in neither. pghook's sessions always speak
//! UTF8 (tokio-postgres reads text as UTF8) and its files are UTF-8, as
//! Airflow's under a UTF-8 locale; a name is checked as the server checks
//! it, so a wrong one fails as it would with psycopg2.

use crate::error::{Result, config};

/// PostgreSQL's encoding names and aliases (src/common/encnames.c), as the
/// server looks them up (lower case, letters and digits only), with the
/// official name of each.
const ENCODINGS: &[(&str, &str)] = &[
    ("abc", "WIN1258"),
    ("alt", "WIN866"),
    ("big5", "BIG5"),
    ("euccn", "EUC_CN"),
    ("eucjis2004", "EUC_JIS_2004"),
    ("eucjp", "EUC_JP"),
    ("euckr", "EUC_KR"),
    ("euctw", "EUC_TW"),
    ("gb18030", "GB18030"),
    ("gbk", "GBK"),
    ("iso88591", "LATIN1"),
    ("iso885910", "LATIN6"),
    ("iso885913", "LATIN7"),
    ("iso885914", "LATIN8"),
    ("iso885915", "LATIN9"),
    ("iso885916", "LATIN10"),
    ("iso88592", "LATIN2"),
    ("iso88593", "LATIN3"),
    ("iso88594", "LATIN4"),
    ("iso88595", "ISO_8859_5"),
    ("iso88596", "ISO_8859_6"),
    ("iso88597", "ISO_8859_7"),
    ("iso88598", "ISO_8859_8"),
    ("iso88599", "LATIN5"),
    ("johab", "JOHAB"),
    ("koi8", "KOI8R"),
    ("koi8r", "KOI8R"),
    ("koi8u", "KOI8U"),
    ("latin1", "LATIN1"),
    ("latin10", "LATIN10"),
    ("latin2", "LATIN2"),
    ("latin3", "LATIN3"),
    ("latin4", "LATIN4"),
    ("latin5", "LATIN5"),
    ("latin6", "LATIN6"),
    ("latin7", "LATIN7"),
    ("latin8", "LATIN8"),
    ("latin9", "LATIN9"),
    ("mskanji", "SJIS"),
    ("muleinternal", "MULE_INTERNAL"),
    ("shiftjis", "SJIS"),
    ("shiftjis2004", "SHIFT_JIS_2004"),
    ("sjis", "SJIS"),
    ("sqlascii", "SQL_ASCII"),
    ("tcvn", "WIN1258"),
    ("tcvn5712", "WIN1258"),
    ("uhc", "UHC"),
    ("unicode", "UTF8"),
    ("utf8", "UTF8"),
    ("vscii", "WIN1258"),
    ("win", "WIN1251"),
    ("win1250", "WIN1250"),
    ("win1251", "WIN1251"),
    ("win1252", "WIN1252"),
    ("win1253", "WIN1253"),
    ("win1254", "WIN1254"),
    ("win1255", "WIN1255"),
    ("win1256", "WIN1256"),
    ("win1257", "WIN1257"),
    ("win1258", "WIN1258"),
    ("win866", "WIN866"),
    ("win874", "WIN874"),
    ("win932", "SJIS"),
    ("win936", "GBK"),
    ("win949", "UHC"),
    ("win950", "BIG5"),
    ("windows1250", "WIN1250"),
    ("windows1251", "WIN1251"),
    ("windows1252", "WIN1252"),
    ("windows1253", "WIN1253"),
    ("windows1254", "WIN1254"),
    ("windows1255", "WIN1255"),
    ("windows1256", "WIN1256"),
    ("windows1257", "WIN1257"),
    ("windows1258", "WIN1258"),
    ("windows866", "WIN866"),
    ("windows874", "WIN874"),
    ("windows932", "SJIS"),
    ("windows936", "GBK"),
    ("windows949", "UHC"),
    ("windows950", "BIG5"),
];

/// Check client_encoding `name` as the server does: a name or alias of
/// an encoding it knows (or libpq's `auto`), else the server's refusal.
pub fn check(name: &str) -> Result<()> {
    let key: String = name.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect();
    match name == "auto" || ENCODINGS.iter().any(|(alias, _)| *alias == key) {
        true => Ok(()),
        false => Err(config(format!("invalid value for parameter \"client_encoding\": \"{name}\""))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_as_the_server_reads_them() {
        for name in
            ["LATIN1", "latin1", "ISO-8859-1", "iso_8859_15", "Windows-1252", "Shift_JIS", "UTF8", "utf-8", "auto"]
        {
            assert_eq!(check(name), Ok(()), "{name}");
        }
        for (_, official) in ENCODINGS {
            assert_eq!(check(official), Ok(()), "{official}");
        }
        for name in ["LATIN11", "klingon", "AUTO"] {
            let e = check(name).unwrap_err();
            assert_eq!(e.message, format!("invalid value for parameter \"client_encoding\": \"{name}\""));
        }
    }
}
