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
        ErrorKind::MissingRequiredArgument
        | ErrorKind::TooFewValues
        | ErrorKind::WrongNumberOfValues
            if !invalid.starts_with('-') =>
        {
            // Built, so that each subcommand knows its full name for its usage line.
            command.build();
            let mut sub = command.clone();
            for step in &path {
                match sub.find_subcommand(step) {
                    Some(next) => sub = next.clone(),
                    None => break,
                }
            }
            let sub = &mut sub;
            eprintln!("\"{name}\" requires {}.", arguments_needed(sub));
            eprintln!("See '{name} --help'.\n");
            let usage = sub.render_usage().to_string();
            eprintln!("{}", usage.trim_end().replacen("Usage: ", "Usage:  ", 1));
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

/// Docker's wording for what a command's positional arguments need:
/// "exactly 1 argument", "exactly 2 arguments", "at least 1 argument".
fn arguments_needed(command: &clap::Command) -> String {
    let required: Vec<&clap::Arg> = command
        .get_positionals()
        .filter(|a| a.is_required_set())
        .collect();
    let open_ended = required.iter().any(|a| {
        a.get_num_args().is_some_and(|range| range.max_values() > 1)
            || matches!(a.get_action(), clap::ArgAction::Append)
    });
    let count = required.len().max(1);
    let plural = if count == 1 { "argument" } else { "arguments" };
    if open_ended {
        format!("at least {count} {plural}")
    } else {
        format!("exactly {count} {plural}")
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
        assert_eq!(
            arguments_needed(find(&root, &["history"])),
            "exactly 1 argument"
        );
        assert_eq!(
            arguments_needed(find(&root, &["tag"])),
            "exactly 2 arguments"
        );
        assert_eq!(
            arguments_needed(find(&root, &["rm"])),
            "at least 1 argument"
        );
        assert_eq!(
            arguments_needed(find(&root, &["container", "rm"])),
            "at least 1 argument"
        );
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
