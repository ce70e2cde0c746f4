//! The `nebula-cred` binary: see the library's documentation and `nebula-cred --help`.

fn main() -> std::process::ExitCode {
    nebula_cred::run()
}
