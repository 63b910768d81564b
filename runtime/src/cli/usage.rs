//! Command-line mistakes told as Docker tells them: `"hull history"
//! requires exactly 1 argument.`, `unknown flag: --bogus`, `'frob' is not a
//! hull command.`, each with the `See 'hull … --help'.` line and Docker's
//! exit code.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::CommandFactory;

/// Prints clap's error `err` the way Docker would and returns the exit code.
pub fn report(err: &clap::Error) -> i32 {
    let mut command = super::Cli::command();
    let path = subcommand_path(&command, std::env::args().skip(1));
    let name = std::iter::once("hull".to_string())
        .chain(path.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    let invalid = match err
        .get(ContextKind::InvalidArg)
        .or_else(|| err.get(ContextKind::InvalidSubcommand))
    {
        Some(ContextValue::String(arg)) => arg.clone(),
        Some(ContextValue::Strings(args)) => args.first().cloned().unwrap_or_default(),
        _ => String::new(),
    };
    match err.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            0
        }
        // Too few positional arguments, or one too many (clap calls an
        // extra one an unknown argument; it does not start with '-').
        ErrorKind::MissingRequiredArgument
        | ErrorKind::TooFewValues
        | ErrorKind::WrongNumberOfValues
        | ErrorKind::UnknownArgument
            if !invalid.starts_with('-') =>
        {
            // Built, so that each subcommand knows its full name for its usage line.
            command.build();
            let sub = &mut subcommand(&command, &path).clone();
            eprintln!("\"{name}\" {}.", arguments_rule(sub));
            eprintln!("See '{name} --help'.\n");
            eprintln!("Usage:  {}", usage_line(sub, &name));
            if let Some(about) = sub.get_about() {
                eprintln!("\n{about}");
            }
            1
        }
        ErrorKind::UnknownArgument if invalid.starts_with("--") || invalid.len() != 2 => {
            eprintln!("unknown flag: {invalid}\nSee '{name} --help'.");
            super::EXIT_RUNTIME_ERROR
        }
        ErrorKind::UnknownArgument => {
            let letter = invalid.trim_start_matches('-');
            eprintln!("unknown shorthand flag: '{letter}' in {invalid}\nSee '{name} --help'.");
            super::EXIT_RUNTIME_ERROR
        }
        // A flag without its value, or with one it cannot take: pflag's words.
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
            let value = match err.get(ContextKind::InvalidValue) {
                Some(ContextValue::String(value)) => value.clone(),
                _ => String::new(),
            };
            command.build();
            let flag = flag_names(subcommand(&command, &path), &invalid);
            if value.is_empty() && err.kind() == ErrorKind::InvalidValue {
                let long = flag.rsplit(", ").next().unwrap_or(&flag);
                eprintln!("flag needs an argument: {long}\nSee '{name} --help'.");
            } else {
                let reason = std::error::Error::source(err)
                    .map(|source| source.to_string())
                    .unwrap_or_else(|| "not one of the values it takes".to_string());
                eprintln!(
                    "invalid argument \"{value}\" for \"{flag}\" flag: {reason}\nSee '{name} --help'."
                );
            }
            super::EXIT_RUNTIME_ERROR
        }
        ErrorKind::InvalidSubcommand => {
            let parent = std::iter::once("hull")
                .chain(path.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(" ");
            eprintln!("hull: '{invalid}' is not a {parent} command.\nSee '{parent} --help'");
            1
        }
        _ => {
            let _ = err.print();
            super::EXIT_RUNTIME_ERROR
        }
    }
}

/// The subcommands named on the command line, outermost first (`container
/// ls`), as far as they are known.
fn subcommand_path(root: &clap::Command, args: impl Iterator<Item = String>) -> Vec<String> {
    let mut path = Vec::new();
    let mut current = root;
    for arg in args {
        if arg.starts_with('-') {
            // A global flag before the command (its value, if any, is no command either).
            continue;
        }
        match current.find_subcommand(&arg) {
            Some(sub) => {
                path.push(sub.get_name().to_string());
                current = sub;
            }
            None if path.is_empty() => continue,
            None => break,
        }
    }
    path
}

/// The subcommand `path` leads to from `root` (as far as it goes).
fn subcommand<'a>(root: &'a clap::Command, path: &[String]) -> &'a clap::Command {
    let mut current = root;
    for step in path {
        match current.find_subcommand(step) {
            Some(next) => current = next,
            None => break,
        }
    }
    current
}

/// A flag as pflag names it in errors, `-t, --time` or `--format`, from
/// clap's rendering of it (`--time <TIME>`).
fn flag_names(command: &clap::Command, rendered: &str) -> String {
    let token = rendered.split_whitespace().next().unwrap_or(rendered);
    let found = command.get_arguments().find(|a| {
        token
            .strip_prefix("--")
            .is_some_and(|l| a.get_long() == Some(l))
            || (token.len() == 2
                && token.strip_prefix('-').and_then(|s| s.chars().next()) == a.get_short())
    });
    match found.map(|a| (a.get_short(), a.get_long())) {
        Some((Some(short), Some(long))) => format!("-{short}, --{long}"),
        Some((None, Some(long))) => format!("--{long}"),
        Some((Some(short), None)) => format!("-{short}"),
        _ => token.to_string(),
    }
}

/// A usage line as Docker's: `hull exec [OPTIONS] CONTAINER COMMAND [ARG...]`
/// (names bare, optional ones in brackets, repeatable ones with `...`).
fn usage_line(command: &clap::Command, name: &str) -> String {
    let mut line = name.to_string();
    // Its own flags: not `--help`, nor the global ones every command has.
    let own_flag =
        |a: &clap::Arg| !a.is_positional() && !a.is_global_set() && a.get_id().as_str() != "help";
    if command.get_arguments().any(own_flag) {
        line.push_str(" [OPTIONS]");
    }
    for arg in command.get_positionals() {
        let repeats = arg
            .get_num_args()
            .is_some_and(|range| range.max_values() > 1)
            || matches!(arg.get_action(), clap::ArgAction::Append);
        let id = arg.get_id().as_str().to_uppercase();
        let text = match arg.get_value_names() {
            Some(names) => names
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(" "),
            None => id.clone(),
        };
        // Named after its field: `containers` is a CONTAINER, repeated.
        let text = match repeats && text == id {
            true => text.strip_suffix('S').map(str::to_string).unwrap_or(text),
            false => text,
        };
        // A name that says its own shape (`COMMAND [ARG...]`) is kept.
        let text = match (repeats && !text.contains("..."), arg.is_required_set()) {
            (true, true) => format!("{text} [{text}...]"),
            (true, false) => format!("[{text}...]"),
            (false, false) if !text.starts_with('[') => format!("[{text}]"),
            (false, _) => text,
        };
        line.push(' ');
        line.push_str(&text);
    }
    line
}

/// Docker's wording for the positional arguments a command takes (its CLI's
/// `cli.NoArgs`, `ExactArgs`, `RequiresMinArgs`, `RequiresMaxArgs` and
/// `RequiresRangeArgs`): "accepts no arguments", "requires exactly 1
/// argument", "requires at least 1 argument", "requires at most 1
/// argument", "requires at least 1 and at most 2 arguments".
fn arguments_rule(command: &clap::Command) -> String {
    let positionals: Vec<&clap::Arg> = command.get_positionals().collect();
    // A required argument that takes several values counts as its least
    // (`exec`'s CONTAINER COMMAND: two).
    let least = positionals
        .iter()
        .filter(|a| a.is_required_set())
        .map(|a| {
            a.get_num_args()
                .map_or(1, |range| range.min_values().max(1))
        })
        .sum::<usize>();
    let open_ended = positionals.iter().any(|a| {
        a.get_num_args().is_some_and(|range| range.max_values() > 1)
            || matches!(a.get_action(), clap::ArgAction::Append)
    });
    let most = (!open_ended).then_some(positionals.len());
    let plural = |n: usize| if n == 1 { "argument" } else { "arguments" };
    match (least, most) {
        (0, Some(0)) => "accepts no arguments".to_string(),
        (least, Some(most)) if least == most => {
            format!("requires exactly {least} {}", plural(least))
        }
        (0, Some(most)) => format!("requires at most {most} {}", plural(most)),
        (least, Some(most)) => {
            format!(
                "requires at least {least} and at most {most} {}",
                plural(most)
            )
        }
        (least, None) => {
            let least = least.max(1);
            format!("requires at least {least} {}", plural(least))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(root: &'a clap::Command, path: &[&str]) -> &'a clap::Command {
        path.iter()
            .fold(root, |c, step| c.find_subcommand(step).unwrap())
    }

    #[test]
    fn arguments_are_counted_as_docker_counts_them() {
        let mut root = super::super::Cli::command();
        root.build();
        let rule = |path: &[&str]| arguments_rule(find(&root, path));
        assert_eq!(rule(&["history"]), "requires exactly 1 argument");
        assert_eq!(rule(&["tag"]), "requires exactly 2 arguments");
        assert_eq!(rule(&["rm"]), "requires at least 1 argument");
        assert_eq!(rule(&["exec"]), "requires at least 2 arguments");
        assert_eq!(rule(&["container", "rm"]), "requires at least 1 argument");
        assert_eq!(rule(&["ps"]), "accepts no arguments");
        assert_eq!(rule(&["images"]), "requires at most 1 argument");
        assert_eq!(
            rule(&["port"]),
            "requires at least 1 and at most 2 arguments"
        );
    }

    #[test]
    fn usage_lines_as_docker_writes_them() {
        let mut root = super::super::Cli::command();
        root.build();
        let usage =
            |path: &[&str]| usage_line(find(&root, path), &format!("hull {}", path.join(" ")));
        assert_eq!(usage(&["history"]), "hull history [OPTIONS] IMAGE");
        assert_eq!(usage(&["tag"]), "hull tag SOURCE TARGET");
        assert_eq!(
            usage(&["exec"]),
            "hull exec [OPTIONS] CONTAINER COMMAND [ARG...]"
        );
        assert_eq!(usage(&["rm"]), "hull rm [OPTIONS] CONTAINER [CONTAINER...]");
    }

    #[test]
    fn the_command_path_skips_global_flags() {
        let root = super::super::Cli::command();
        let args = ["--root", "/x", "container", "ls", "-a"].map(String::from);
        assert_eq!(
            subcommand_path(&root, args.into_iter()),
            ["container", "ls"]
        );
        let args = ["history"].map(String::from);
        assert_eq!(subcommand_path(&root, args.into_iter()), ["history"]);
    }
}
