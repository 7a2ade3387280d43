//! libpq's connection service file (`pg_service.conf`): INI-style
//! `[service]` sections of `keyword=value` lines.

use crate::error::{Result, config};

/// The settings of section `service` in `text` (the service file `path`),
/// in file order, or `None` if it has no such section. Errors as libpq's:
/// a line without `=`, a keyword `is_keyword` does not know, a nested
/// `service`, or an LDAP lookup (which pghook does not do).
pub fn section(
    text: &str,
    path: &str,
    service: &str,
    is_keyword: impl Fn(&str) -> bool,
) -> Result<Option<Vec<(String, String)>>> {
    let mut found: Option<Vec<(String, String)>> = None;
    for (number, line) in text.lines().enumerate() {
        let line = line.trim_matches(|c: char| c.is_ascii_whitespace());
        let syntax = || config(format!("syntax error in service file \"{path}\", line {}", number + 1));
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[') {
            if found.is_some() {
                break;
            }
            // libpq compares the name and the `]` right after it; the rest of the line is ignored.
            if name.strip_prefix(service).is_some_and(|rest| rest.starts_with(']')) {
                found = Some(Vec::new());
            }
            continue;
        }
        let Some(settings) = found.as_mut() else { continue };
        if line.starts_with("ldap") {
            return Err(config(format!(
                "service file \"{path}\", line {}: LDAP service lookup is not supported by pghook",
                number + 1
            )));
        }
        let (key, value) = line.split_once('=').ok_or_else(syntax)?;
        if key == "service" {
            return Err(config(format!(
                "nested service specifications not supported in service file \"{path}\", line {}",
                number + 1
            )));
        }
        if !is_keyword(key) {
            return Err(syntax());
        }
        // The first setting of a keyword wins, as in libpq.
        if !settings.iter().any(|(k, _)| k == key) {
            settings.push((key.to_string(), value.to_string()));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(key: &str) -> bool {
        ["host", "port", "dbname", "user", "sslmode"].contains(&key)
    }

    #[test]
    fn reads_the_named_section_only() {
        let text =
            "# services\n[other]\nhost=a\n\n  [prod]  \n host=db.local \nport=5433\nport=1\n#x=y\n[next]\nhost=b\n";
        let got = section(text, "f", "prod", known).unwrap().unwrap();
        let want = [("host", "db.local"), ("port", "5433")].map(|(k, v)| (k.to_string(), v.to_string()));
        assert_eq!(got, want);
        assert_eq!(section(text, "f", "missing", known).unwrap(), None);
        // A prefix of a section name is not that section.
        assert_eq!(section(text, "f", "pro", known).unwrap(), None);
    }

    #[test]
    fn refuses_what_libpq_refuses() {
        for (text, message) in [
            ("[s]\nhost\n", "syntax error in service file \"f\", line 2"),
            ("[s]\nbogus=1\n", "syntax error in service file \"f\", line 2"),
            ("[s]\nservice=t\n", "nested service specifications not supported in service file \"f\", line 2"),
            ("[s]\nldap://x/y\n", "LDAP service lookup is not supported"),
        ] {
            let e = section(text, "f", "s", known).unwrap_err();
            assert!(e.message.contains(message), "{text:?}: {}", e.message);
        }
        // Lines outside the section are not read.
        assert!(section("[t]\nbogus\n[s]\nhost=a\n", "f", "s", known).is_ok());
    }
}
