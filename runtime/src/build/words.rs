//! Docker's word processing for Dockerfile arguments: splitting on blanks
//! outside quotes, quotes removed, `\` escapes, and `$VAR`, `${VAR}`,
//! `${VAR:-default}`, `${VAR-default}`, `${VAR:+alt}`, `${VAR+alt}`
//! substitution from the build's variables (ENV, then ARG).

use super::BuildError;

/// The variables in scope: `(name, value)`, later entries win.
pub type Vars = [(String, String)];

fn lookup<'a>(vars: &'a Vars, name: &str) -> Option<&'a str> {
    vars.iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Splits `text` into words at blanks outside quotes, keeping the quotes
/// and escapes (for [`expand`] to process).
pub fn split_raw(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    let mut in_word = false;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
                continue;
            }
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (Some('\''), _) => {}
            (_, '\\') => {
                word.push(c);
                if let Some(next) = chars.next() {
                    word.push(next);
                }
                in_word = true;
                continue;
            }
            _ => {}
        }
        word.push(c);
        in_word = true;
    }
    if in_word {
        words.push(word);
    }
    words
}

/// Processes one word: quotes removed, escapes applied, variables
/// substituted.
pub fn expand(word: &str, vars: &Vars) -> Result<String, BuildError> {
    let mut out = String::new();
    let chars: Vec<char> = word.chars().collect();
    let mut i = 0;
    let mut quote: Option<char> = None;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => out.push(c),
            (None, '\\') => {
                if let Some(&next) = chars.get(i) {
                    out.push(next);
                    i += 1;
                }
            }
            (Some('"'), '\\') => match chars.get(i) {
                Some(&next @ ('"' | '\\' | '$')) => {
                    out.push(next);
                    i += 1;
                }
                _ => out.push('\\'),
            },
            (_, '$') => i = substitute(&chars, i, vars, &mut out)?,
            (_, c) => out.push(c),
        }
    }
    Ok(out)
}

/// Substitutes the variable after a `$` at `chars[i..]`; returns the index
/// after it.
fn substitute(
    chars: &[char],
    mut i: usize,
    vars: &Vars,
    out: &mut String,
) -> Result<usize, BuildError> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    if chars.get(i) == Some(&'{') {
        i += 1;
        let start = i;
        while i < chars.len() && is_name(chars[i]) {
            i += 1;
        }
        let name: String = chars[start..i].iter().collect();
        if name.is_empty() {
            return Err(BuildError::Substitution(
                "bad substitution: missing variable name".to_owned(),
            ));
        }
        let value = lookup(vars, &name);
        if chars.get(i) == Some(&'}') {
            out.push_str(value.unwrap_or(""));
            return Ok(i + 1);
        }
        let colon = chars.get(i) == Some(&':');
        if colon {
            i += 1;
        }
        let modifier = chars.get(i).copied();
        i += 1;
        // The word up to the matching brace, itself processed.
        let start = i;
        let mut depth = 1;
        while i < chars.len() {
            match chars[i] {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        if i >= chars.len() {
            return Err(BuildError::Substitution(format!(
                "missing '}}' in ${{{name}"
            )));
        }
        let word: String = chars[start..i].iter().collect();
        let set = match value {
            Some(v) => !(colon && v.is_empty()),
            None => false,
        };
        match modifier {
            Some('-') if set => out.push_str(value.unwrap_or("")),
            Some('-') => out.push_str(&expand(&word, vars)?),
            Some('+') if set => out.push_str(&expand(&word, vars)?),
            Some('+') => {}
            _ => {
                return Err(BuildError::Substitution(format!(
                    "unsupported modifier in ${{{name}...}}"
                )))
            }
        }
        return Ok(i + 1);
    }
    let start = i;
    while i < chars.len() && is_name(chars[i]) {
        i += 1;
    }
    if start == i {
        out.push('$');
        return Ok(i);
    }
    let name: String = chars[start..i].iter().collect();
    out.push_str(lookup(vars, &name).unwrap_or(""));
    Ok(i)
}

/// Splits and processes `text` into words.
pub fn expand_words(text: &str, vars: &Vars) -> Result<Vec<String>, BuildError> {
    split_raw(text).iter().map(|w| expand(w, vars)).collect()
}

/// `NAME=VALUE ...` pairs (or the old `NAME VALUE` form when `legacy`
/// allows it), as ENV and LABEL take them, values processed.
pub fn key_values(text: &str, vars: &Vars, legacy: bool) -> Result<Vec<(String, String)>, String> {
    let words = split_raw(text);
    let Some(first) = words.first() else {
        return Err("requires at least one argument".to_owned());
    };
    if !first.contains('=') {
        if !legacy || words.len() < 2 {
            return Err("must have two arguments".to_owned());
        }
        let value = text.trim_start()[first.len()..].trim();
        let value = expand(value, vars).map_err(|e| e.to_string())?;
        return Ok(vec![(first.clone(), value)]);
    }
    words
        .iter()
        .map(|word| {
            let (name, value) = word.split_once('=').ok_or_else(|| {
                format!(
                    "Syntax error - can't find = in \"{word}\". Must be of the form: name=value"
                )
            })?;
            let name = expand(name, vars).map_err(|e| e.to_string())?;
            if name.is_empty() {
                return Err("Syntax error - empty name".to_owned());
            }
            Ok((name, expand(value, vars).map_err(|e| e.to_string())?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vec<(String, String)> {
        vec![
            ("A".into(), "one".into()),
            ("EMPTY".into(), String::new()),
            ("A".into(), "two".into()),
        ]
    }

    fn x(word: &str) -> String {
        expand(word, &vars()).unwrap()
    }

    #[test]
    fn substitution_as_docker() {
        assert_eq!(x("$A"), "two");
        assert_eq!(x("${A}/bin"), "two/bin");
        assert_eq!(x("$NOPE-x"), "-x");
        assert_eq!(x("${NOPE:-dflt}"), "dflt");
        assert_eq!(x("${EMPTY:-dflt}"), "dflt");
        assert_eq!(x("${EMPTY-dflt}"), "");
        assert_eq!(x("${A:-dflt}"), "two");
        assert_eq!(x("${A:+alt}"), "alt");
        assert_eq!(x("${NOPE:+alt}"), "");
        assert_eq!(x("${NOPE:-${A}}"), "two");
        assert_eq!(x("'$A'"), "$A");
        assert_eq!(x("\"$A b\""), "two b");
        assert_eq!(x("\\$A"), "$A");
        assert_eq!(x("cost$"), "cost$");
        assert!(expand("${A", &vars()).is_err());
        assert!(expand("${}", &vars()).is_err());
    }

    #[test]
    fn words_split_outside_quotes() {
        assert_eq!(
            split_raw(r#"a "b c"  'd e' f\ g"#),
            vec!["a", "\"b c\"", "'d e'", "f\\ g"]
        );
        assert_eq!(
            expand_words(r#"a "b c" f\ g $A"#, &vars()).unwrap(),
            vec!["a", "b c", "f g", "two"]
        );
    }

    #[test]
    fn env_and_label_pairs() {
        assert_eq!(
            key_values(r#"X=1 Y="a b" Z=$A"#, &vars(), true).unwrap(),
            vec![
                ("X".to_string(), "1".to_string()),
                ("Y".into(), "a b".into()),
                ("Z".into(), "two".into())
            ]
        );
        assert_eq!(
            key_values("X hello  world", &vars(), true).unwrap(),
            vec![("X".to_string(), "hello  world".to_string())]
        );
        assert!(key_values("X", &vars(), true).is_err());
        assert!(key_values("X=1 Y", &vars(), true).is_err());
    }
}
