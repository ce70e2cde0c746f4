//! The `nebula-cred` binary, run as a process against the local backend (and memory where
//! one process is enough): every command, its exit status, and that no secret reaches
//! stdout, stderr or the files unless asked for. One module per command (or concern),
//! sharing [`support`].

mod support;

mod completion;
mod context;
mod doctor;
mod exists_delete;
mod keys;
mod list;
mod migrate;
mod operator;
mod put_get;
mod put_guards;
mod read_only;
mod readme;
mod rotate_key;
#[cfg(unix)]
mod run;
mod secrets;
mod shapes;
#[cfg(unix)]
mod transfer;
mod usage;
