//! The functions Docker's CLI adds to Go's templates (`json`, `split`,
//! `join`, `title`, `lower`, `upper`, `pad`, `truncate`), their header
//! twins (a `table` header row passes its column names through them
//! unchanged, as Docker's `HeaderFunctions` do), and the passage of values
//! between JSON and the template engine.

use gotmpl::{FuncMap, TemplateError, Value};
use std::sync::Arc;

/// The names of the functions of [`docker_functions`] (and of
/// [`header_functions`]).
pub const DOCKER_FUNCTIONS: [&str; 8] = [
    "json", "split", "join", "title", "lower", "upper", "pad", "truncate",
];

/// The function behind a row's `{{.Label "KEY"}}` (see
/// [`super::template::LABEL_FIELD`]): the label's value, or nothing.
pub const LABEL_FUNCTION: &str = "hull_label";

/// Go's own template functions, which every template knows.
pub const GO_BUILTINS: [&str; 19] = [
    "and", "call", "html", "index", "slice", "js", "len", "not", "or", "print", "printf",
    "println", "urlquery", "eq", "ge", "gt", "le", "lt", "ne",
];

/// `serde_json`'s value as the template engine's.
pub fn from_json(value: &serde_json::Value) -> Result<Value, TemplateError> {
    gotmpl::to_value(value)
}

/// The template engine's value as JSON (maps keep their sorted keys, as
/// Go's encoder writes them; functions become `null`).
pub fn to_json(value: &Value) -> serde_json::Value {
    use serde_json::Value as Json;
    match value {
        Value::Nil | Value::Function(_) => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(n) => Json::from(*n),
        Value::Uint(n) => Json::from(*n),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::String(s) => Json::String(s.to_string()),
        Value::List(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Map(map) => Json::Object(
            map.iter()
                .map(|(k, v)| (k.to_string(), to_json(v)))
                .collect(),
        ),
    }
}

/// Checks that `name` got `count` arguments.
fn expect_args(name: &str, args: &[Value], count: usize) -> Result<(), TemplateError> {
    if args.len() == count {
        Ok(())
    } else {
        Err(TemplateError::ArgCount {
            name: name.to_string(),
            expected: count,
            got: args.len(),
        })
    }
}

/// A string argument; other values as Go's `%v` prints them.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.to_string(),
        other => other.to_string(),
    }
}

/// An integer argument.
fn integer(name: &str, value: &Value) -> Result<usize, TemplateError> {
    value
        .as_int()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| {
            TemplateError::Exec(format!(
                "{name}: expected a non-negative integer, got {value}"
            ))
        })
}

/// `strings.Title`: each word's first letter upper-cased, the rest kept.
fn title(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at_word_start = true;
    for c in text.chars() {
        if at_word_start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        at_word_start = !(c.is_alphanumeric() || c == '_' || c == '\'');
    }
    out
}

/// `strings.Split`: an empty separator splits into characters.
fn split(text: &str, separator: &str) -> Value {
    let parts: Vec<Value> = if separator.is_empty() {
        text.chars()
            .map(|c| Value::String(c.to_string().into()))
            .collect()
    } else {
        text.split(separator)
            .map(|p| Value::String(p.into()))
            .collect()
    };
    Value::List(parts.into())
}

/// Adds `name` computing `f` over exactly `count` arguments.
fn add(
    funcs: &mut FuncMap,
    name: &'static str,
    count: usize,
    f: impl Fn(&[Value]) -> Result<Value, TemplateError> + Send + Sync + 'static,
) {
    funcs.insert(
        name.to_string(),
        Arc::new(move |args: &[Value]| {
            expect_args(name, args, count)?;
            f(args)
        }),
    );
}

fn string(text: String) -> Value {
    Value::String(text.into())
}

/// Docker's functions, as `docker ps --format` and `inspect -f` know them.
pub fn docker_functions() -> FuncMap {
    let mut funcs = FuncMap::new();
    add(&mut funcs, "json", 1, |args| {
        serde_json::to_string(&to_json(&args[0]))
            .map(string)
            .map_err(|e| TemplateError::Exec(format!("json: {e}")))
    });
    add(&mut funcs, "split", 2, |args| {
        Ok(split(&text(&args[0]), &text(&args[1])))
    });
    add(&mut funcs, "join", 2, |args| {
        let separator = text(&args[1]);
        Ok(string(match &args[0] {
            Value::List(items) => items.iter().map(text).collect::<Vec<_>>().join(&separator),
            other => text(other),
        }))
    });
    add(&mut funcs, "title", 1, |args| {
        Ok(string(title(&text(&args[0]))))
    });
    add(&mut funcs, "lower", 1, |args| {
        Ok(string(text(&args[0]).to_lowercase()))
    });
    add(&mut funcs, "upper", 1, |args| {
        Ok(string(text(&args[0]).to_uppercase()))
    });
    add(&mut funcs, "pad", 3, |args| {
        let source = text(&args[0]);
        if source.is_empty() {
            return Ok(string(source));
        }
        let (before, after) = (integer("pad", &args[1])?, integer("pad", &args[2])?);
        Ok(string(format!(
            "{}{source}{}",
            " ".repeat(before),
            " ".repeat(after)
        )))
    });
    add(&mut funcs, "truncate", 2, |args| {
        let length = integer("truncate", &args[1])?;
        Ok(string(text(&args[0]).chars().take(length).collect()))
    });
    add(&mut funcs, LABEL_FUNCTION, 2, |args| {
        Ok(match &args[0] {
            Value::Map(labels) => labels
                .get(text(&args[1]).as_str())
                .cloned()
                .unwrap_or_else(|| string(String::new())),
            _ => string(String::new()),
        })
    });
    funcs
}

/// The same names for a `table` header row: each gives back its first
/// argument, so `{{upper .Names}}` heads its column `NAMES`.
pub fn header_functions() -> FuncMap {
    let mut funcs = FuncMap::new();
    for (name, count) in DOCKER_FUNCTIONS.into_iter().zip([1, 2, 2, 1, 1, 1, 3, 2]) {
        add(&mut funcs, name, count, |args| Ok(args[0].clone()));
    }
    // A header row has no labels: as in Docker's, the header stops there.
    add(&mut funcs, LABEL_FUNCTION, 2, |_| {
        Err(TemplateError::Exec("no labels in a header".into()))
    });
    funcs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(name: &str, args: &[Value]) -> Result<Value, TemplateError> {
        let funcs = docker_functions();
        funcs[name](args)
    }

    fn s(text: &str) -> Value {
        Value::String(text.into())
    }

    #[test]
    fn json_round_trips_with_sorted_keys() {
        let data = json!({"b": [1, -2, 1.5, null, true], "a": {"z": "x"}});
        let value = from_json(&data).unwrap();
        assert_eq!(to_json(&value), data);
        assert_eq!(
            call("json", &[value]).unwrap().to_string(),
            r#"{"a":{"z":"x"},"b":[1,-2,1.5,null,true]}"#
        );
        // No HTML escaping, as Docker's encoder is set.
        assert_eq!(
            call("json", &[s("<a&b>")]).unwrap().to_string(),
            "\"<a&b>\""
        );
    }

    #[test]
    fn strings_as_docker_changes_them() {
        assert_eq!(call("upper", &[s("up")]).unwrap().to_string(), "UP");
        assert_eq!(call("lower", &[s("DOWN")]).unwrap().to_string(), "down");
        assert_eq!(
            call("title", &[s("hello wide-world")]).unwrap().to_string(),
            "Hello Wide-World"
        );
        assert_eq!(
            call("split", &[s("a,b,c"), s(",")]).unwrap().to_string(),
            "[a b c]"
        );
        let list = call("split", &[s("a:b"), s(":")]).unwrap();
        assert_eq!(call("join", &[list, s("-")]).unwrap().to_string(), "a-b");
        assert_eq!(
            call("pad", &[s("x"), Value::Int(2), Value::Int(1)])
                .unwrap()
                .to_string(),
            "  x "
        );
        assert_eq!(
            call("pad", &[s(""), Value::Int(2), Value::Int(1)])
                .unwrap()
                .to_string(),
            ""
        );
        assert_eq!(
            call("truncate", &[s("abcdef"), Value::Int(3)])
                .unwrap()
                .to_string(),
            "abc"
        );
        assert!(matches!(
            call("upper", &[]),
            Err(TemplateError::ArgCount { .. })
        ));
    }

    #[test]
    fn header_functions_give_back_the_column_name() {
        let funcs = header_functions();
        assert_eq!(funcs["upper"](&[s("NAMES")]).unwrap().to_string(), "NAMES");
        assert_eq!(
            funcs["join"](&[s("NAMES"), s(",")]).unwrap().to_string(),
            "NAMES"
        );
        assert_eq!(funcs.len(), DOCKER_FUNCTIONS.len() + 1);
    }
}
