//! The `fsbench` binary: a thin shell over [`fsbench::cli`].

fn main() -> std::process::ExitCode {
    fsbench::cli::main()
}
