//! The `hull` command.

fn main() {
    std::process::exit(hull_runtime::cli::main());
}
