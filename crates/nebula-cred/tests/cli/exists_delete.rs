//! `exists` and `delete`: answered by exit status.

use predicates::prelude::*;

use crate::support::*;

#[test]
fn exists_and_delete_report_by_exit_status() {
    let f = Fixture::new();
    f.put("api_key", SECRET, &[]);
    f.cmd(&["exists", "api_key"]).assert().code(0);
    f.cmd(&["exists", "Api_Key"])
        .assert()
        .code(3)
        .stdout("'Api_Key' does not exist\n")
        .stderr("");
    f.cmd(&["delete", "api_key"])
        .assert()
        .success()
        .stdout("deleted 'api_key'\n");
    f.cmd(&["exists", "api_key"]).assert().code(3);
    f.cmd(&["delete", "api_key"])
        .assert()
        .success()
        .stdout(predicate::str::contains("nothing to delete"));
    f.cmd(&["get", "api_key"]).assert().code(3);
}
