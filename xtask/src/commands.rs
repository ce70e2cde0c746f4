//! One module a command. A command builds on the modules below it (harness, emulators,
//! tidy, …) and never on another command.

pub(crate) mod bench;
pub(crate) mod ci;
pub(crate) mod emulators;
pub(crate) mod fuzz;
pub(crate) mod test_integration;
