//! Dockerfile parsing: lines (comments, `\` continuations, the `# syntax`
//! and `# escape` parser directives) into instructions, each with its line
//! number, flags and arguments. Bounded: a Dockerfile, a line and the
//! number of instructions have limits, so hostile input cannot make the
//! parser use unbounded memory or time. Variable substitution happens when
//! a step runs ([`super::words`]), since values come from ENV and ARG.

use super::BuildError;

/// The largest Dockerfile read.
pub const MAX_DOCKERFILE_BYTES: usize = 1 << 20;
/// The longest logical line (continuations joined).
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// The most instructions in one Dockerfile.
pub const MAX_INSTRUCTIONS: usize = 1000;

/// A command of RUN, CMD or ENTRYPOINT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Shell form: run through the image's SHELL (`/bin/sh -c`).
    Shell(String),
    /// Exec form: a JSON array.
    Exec(Vec<String>),
}

/// One instruction, as written (arguments not yet substituted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// The line it starts on (1-based).
    pub line: usize,
    /// The keyword, upper case (`RUN`).
    pub keyword: String,
    /// Its `--name=value` flags (`--from=build`, `--chown=1:1`).
    pub flags: Vec<(String, String)>,
    /// The rest of the line, continuations joined, trimmed.
    pub rest: String,
}

/// The instructions Hull knows.
const KEYWORDS: &[&str] = &[
    "FROM",
    "RUN",
    "CMD",
    "ENTRYPOINT",
    "COPY",
    "ADD",
    "ENV",
    "ARG",
    "WORKDIR",
    "USER",
    "EXPOSE",
    "LABEL",
    "VOLUME",
    "STOPSIGNAL",
    "SHELL",
    "MAINTAINER",
    "HEALTHCHECK",
    "ONBUILD",
];

/// Docker's error for a Dockerfile line.
fn error(line: usize, message: impl std::fmt::Display) -> BuildError {
    BuildError::Parse(format!("Dockerfile parse error line {line}: {message}"))
}

/// Parses a Dockerfile's text.
pub fn parse(text: &[u8]) -> Result<Vec<Instruction>, BuildError> {
    if text.len() > MAX_DOCKERFILE_BYTES {
        return Err(BuildError::Parse(format!(
            "the Dockerfile is larger than {MAX_DOCKERFILE_BYTES} bytes"
        )));
    }
    let text = std::str::from_utf8(text)
        .map_err(|e| BuildError::Parse(format!("the Dockerfile is not UTF-8: {e}")))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut escape = '\\';
    let mut directives = true;
    let mut instructions = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw.trim_end_matches('\r');
        if directives {
            if let Some((name, value)) = directive(line) {
                if name == "escape" {
                    escape = match value.as_str() {
                        "\\" => '\\',
                        "`" => '`',
                        other => {
                            return Err(error(
                                number,
                                format!("invalid escape token '{other}' does not validate"),
                            ))
                        }
                    };
                }
                continue;
            }
            directives = false;
        }
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') {
            // A comment, also in the middle of a continued instruction.
            continue;
        }
        let (start, mut logical) = match pending.take() {
            Some(p) => p,
            None if trimmed.is_empty() => continue,
            None => (number, String::new()),
        };
        let continued = line.trim_end().ends_with(escape);
        let content = if continued {
            let body = line.trim_end();
            &body[..body.len() - escape.len_utf8()]
        } else {
            line
        };
        logical.push_str(content);
        if logical.len() > MAX_LINE_BYTES {
            return Err(error(
                start,
                format!("the line is longer than {MAX_LINE_BYTES} bytes"),
            ));
        }
        if continued {
            pending = Some((start, logical));
            continue;
        }
        if instructions.len() == MAX_INSTRUCTIONS {
            return Err(error(
                start,
                format!("more than {MAX_INSTRUCTIONS} instructions"),
            ));
        }
        instructions.push(instruction(start, &logical)?);
    }
    if let Some((start, logical)) = pending {
        if !logical.trim().is_empty() {
            instructions.push(instruction(start, &logical)?);
        }
    }
    if instructions.is_empty() {
        return Err(BuildError::Parse(
            "the Dockerfile cannot be empty".to_owned(),
        ));
    }
    Ok(instructions)
}

/// A parser directive (`# escape=\``, `# syntax=...`), lower-cased name.
fn directive(line: &str) -> Option<(String, String)> {
    let body = line.trim().strip_prefix('#')?;
    let (name, value) = body.split_once('=')?;
    let name = name.trim();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    Some((name.to_ascii_lowercase(), value.trim().to_owned()))
}

/// One logical line into an instruction.
fn instruction(line: usize, text: &str) -> Result<Instruction, BuildError> {
    let text = text.trim();
    let (keyword, mut rest) = text
        .split_once(char::is_whitespace)
        .map_or((text, ""), |(k, r)| (k, r.trim_start()));
    let keyword = keyword.to_ascii_uppercase();
    if !KEYWORDS.contains(&keyword.as_str()) {
        return Err(error(line, format!("unknown instruction: {keyword}")));
    }
    let mut flags = Vec::new();
    while let Some(flag) = rest.strip_prefix("--") {
        let (word, after) = flag
            .split_once(char::is_whitespace)
            .map_or((flag, ""), |(w, a)| (w, a.trim_start()));
        let (name, value) = word.split_once('=').unwrap_or((word, ""));
        if name.is_empty() {
            break;
        }
        flags.push((name.to_owned(), value.to_owned()));
        rest = after;
    }
    Ok(Instruction {
        line,
        keyword,
        flags,
        rest: rest.trim().to_owned(),
    })
}

impl Instruction {
    /// Docker's error about this instruction.
    pub fn error(&self, message: impl std::fmt::Display) -> BuildError {
        error(self.line, message)
    }

    /// The value of flag `name`, refusing flags the instruction does not
    /// take.
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Refuses any flag not in `allowed`, as Docker does.
    pub fn check_flags(&self, allowed: &[&str]) -> Result<(), BuildError> {
        match self
            .flags
            .iter()
            .find(|(n, _)| !allowed.contains(&n.as_str()))
        {
            Some((name, _)) => Err(self.error(format!("unknown flag: {name}"))),
            None => Ok(()),
        }
    }

    /// The arguments as a JSON string array, if written as one.
    pub fn json_array(&self) -> Option<Vec<String>> {
        if !self.rest.starts_with('[') {
            return None;
        }
        serde_json::from_str(&self.rest).ok()
    }

    /// The command of RUN, CMD or ENTRYPOINT.
    pub fn command(&self) -> Result<Command, BuildError> {
        if self.rest.is_empty() {
            return Err(self.error(format!("{} requires at least one argument", self.keyword)));
        }
        Ok(match self.json_array() {
            Some(list) => Command::Exec(list),
            None => Command::Shell(self.rest.clone()),
        })
    }

    /// The text Docker prints for the step (`RUN echo hi`), flags included.
    pub fn text(&self) -> String {
        let mut text = self.keyword.clone();
        for (name, value) in &self.flags {
            text.push_str(&format!(" --{name}={value}"));
        }
        if !self.rest.is_empty() {
            text.push(' ');
            text.push_str(&self.rest);
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Instruction {
        let mut all = parse(text.as_bytes()).unwrap();
        assert_eq!(all.len(), 1, "{all:?}");
        all.remove(0)
    }

    fn parse_error(text: &str) -> String {
        parse(text.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn every_instruction_is_known() {
        for keyword in KEYWORDS {
            let i = one(&format!("{} x", keyword.to_lowercase()));
            assert_eq!(i.keyword, *keyword);
            assert_eq!(i.rest, "x");
        }
    }

    #[test]
    fn continuations_comments_and_lines() {
        let all = parse(
            b"# syntax=docker/dockerfile:1\n\nFROM busybox AS build\n# a comment\nRUN echo a \\\n  # inside\n  && echo b\nCMD [\"sh\"]\n",
        )
        .unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!((all[0].line, all[0].rest.as_str()), (3, "busybox AS build"));
        assert_eq!(all[1].line, 5);
        assert_eq!(all[1].rest, "echo a   && echo b");
        assert_eq!(all[2].command().unwrap(), Command::Exec(vec!["sh".into()]));
        assert_eq!(
            all[1].command().unwrap(),
            Command::Shell("echo a   && echo b".into())
        );
    }

    #[test]
    fn escape_directive() {
        let all = parse(b"# escape=`\nFROM x\nRUN echo a `\n b\n").unwrap();
        assert_eq!(all[1].rest, "echo a  b");
        assert!(parse_error("# escape=x\nFROM x\n").contains("line 1"));
    }

    #[test]
    fn flags() {
        let i = one("COPY --from=build --chown=1:2 /a /b");
        assert_eq!(i.flag("from"), Some("build"));
        assert_eq!(i.flag("chown"), Some("1:2"));
        assert_eq!(i.rest, "/a /b");
        assert!(i.check_flags(&["from", "chown"]).is_ok());
        let err = i.check_flags(&["from"]).unwrap_err().to_string();
        assert_eq!(err, "Dockerfile parse error line 1: unknown flag: chown");
        assert_eq!(i.text(), "COPY --from=build --chown=1:2 /a /b");
    }

    #[test]
    fn errors_name_their_line() {
        assert_eq!(
            parse_error("FROM x\n\nFOO bar\n"),
            "Dockerfile parse error line 3: unknown instruction: FOO"
        );
        assert_eq!(
            one("RUN").command().unwrap_err().to_string(),
            "Dockerfile parse error line 1: RUN requires at least one argument"
        );
        assert!(parse_error("\n# only a comment\n").contains("empty"));
    }

    #[test]
    fn hostile_input_is_bounded() {
        let big = vec![b'#'; MAX_DOCKERFILE_BYTES + 1];
        assert!(parse(&big).unwrap_err().to_string().contains("larger"));
        let long = format!("RUN {}\n", "a \\\n".repeat(MAX_LINE_BYTES / 2));
        assert!(parse_error(&long).contains("longer"));
        let many = "RUN x\n".repeat(MAX_INSTRUCTIONS + 1);
        assert!(parse_error(&many).contains("more than"));
        assert!(parse(b"FROM \xff")
            .unwrap_err()
            .to_string()
            .contains("UTF-8"));
    }

    #[test]
    fn a_final_continuation_ends_the_instruction() {
        let i = one("RUN echo a \\");
        assert_eq!(i.rest, "echo a");
    }
}
