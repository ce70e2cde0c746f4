//! One context, set once (feature 2): NEBULA_CRED_CONFIG, the default file under the XDG
//! configuration directory, named profiles, `config show`; and the salt of the
//! environment with --config (defect 4).

use predicates::prelude::*;

use crate::support::*;

/// A file with a default (store `main`) and profiles `prod` (store `prod`) and `dev`.
fn profiles(f: &Fixture) -> std::path::PathBuf {
    let path = f.path("profiles.toml");
    let dir = |name: &str| format!("{:?}", f.path(name).display().to_string());
    std::fs::write(
        &path,
        format!(
            "provider = \"local\"\nbase_path = {}\n\n[profiles.prod]\nprovider = \"local\"\nbase_path = {}\n\n\
             [profiles.dev]\nprovider = \"vault\"\nendpoint = \"http://127.0.0.1:1\"\nallow_http = true\n\
             auth = {{ method = \"token\", token = \"hunter2-vault-token\" }}\n",
            dir("main"),
            dir("prod")
        ),
    )
    .unwrap();
    path
}

#[test]
fn profiles_select_a_store_by_flag_or_environment() {
    let f = Fixture::new();
    let file = profiles(&f);
    let key = f.key.to_str().unwrap();
    let run = |args: &[&str]| {
        let mut c = bare();
        c.env("NEBULA_CRED_CONFIG", &file).args(["--key-file", key]).args(args);
        c
    };
    run(&["put", "in_main"]).write_stdin("m").assert().success();
    run(&["--profile", "prod", "put", "in_prod"])
        .write_stdin("p")
        .assert()
        .success();
    assert!(f.path("main").join("in_main.enc.json").exists());
    assert!(f.path("prod").join("in_prod.enc.json").exists());
    run(&["list", "-q"]).assert().success().stdout("in_main\n");
    run(&["list", "-q"])
        .env("NEBULA_CRED_PROFILE", "prod")
        .assert()
        .success()
        .stdout("in_prod\n");
    // The flag beats the variable.
    run(&["--profile", "prod", "get", "in_prod"])
        .env("NEBULA_CRED_PROFILE", "nope")
        .assert()
        .success()
        .stdout("p");
    run(&["--profile", "staging", "list"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no profile 'staging'").and(predicate::str::contains("prod")));

    // config show: provider, location, profile, source; never the token.
    let out = run(&["--profile", "dev", "config", "show"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let shown = text(&out);
    assert!(
        shown.contains("provider: vault") && shown.contains("profile:  dev"),
        "{shown}"
    );
    assert!(shown.contains("endpoint http://127.0.0.1:1"), "{shown}");
    assert!(shown.contains("NEBULA_CRED_CONFIG="), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
    // A profile needs a file.
    bare()
        .args(["--profile", "prod", "list"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("profile 'prod'"));
}

#[test]
fn the_default_file_under_the_xdg_config_directory_is_used_when_nothing_else_is_given() {
    let f = Fixture::new();
    let xdg = f.path("xdg");
    std::fs::create_dir_all(xdg.join("nebula-cred")).unwrap();
    std::fs::copy(profiles(&f), xdg.join("nebula-cred/config.toml")).unwrap();
    let key = f.key.to_str().unwrap();
    let run = |args: &[&str]| {
        let mut c = bare();
        c.env("XDG_CONFIG_HOME", &xdg).args(["--key-file", key]).args(args);
        c
    };
    run(&["--profile", "prod", "put", "x"])
        .write_stdin("v")
        .assert()
        .success();
    assert!(f.path("prod").join("x.enc.json").exists());
    run(&["config", "show"])
        .assert()
        .success()
        .stdout(predicate::str::contains("the default file").and(predicate::str::contains("main")));
    // HOME/.config when XDG_CONFIG_HOME is unset.
    let home = f.path("home");
    std::fs::create_dir_all(home.join(".config")).unwrap();
    std::fs::rename(xdg.join("nebula-cred"), home.join(".config/nebula-cred")).unwrap();
    run(&["--profile", "prod", "get", "x"])
        .env_remove("XDG_CONFIG_HOME")
        .env("HOME", &home)
        .assert()
        .success()
        .stdout("v");
    // --config and an explicit provider in the environment beat the default file.
    run(&["config", "show"])
        .env_remove("XDG_CONFIG_HOME")
        .env("HOME", &home)
        .env("NEBULA_CREDENTIAL_PROVIDER", "memory")
        .assert()
        .success()
        .stdout(predicate::str::contains("provider: memory"));
}

#[test]
fn the_salt_of_the_environment_is_used_with_a_config_file() {
    let f = Fixture::new();
    let salt = String::from_utf8(bare().args(["keygen", "--salt"]).output().unwrap().stdout).unwrap();
    let pass = f.path("pass");
    std::fs::write(&pass, "correct horse battery staple\n").unwrap();
    let by_pass = |args: &[&str]| {
        let mut c = with_key(&f.config, "--passphrase-file", &pass, args);
        c.env("NEBULA_CREDENTIAL_SALT", salt.trim());
        c
    };
    by_pass(&["put", "p"]).write_stdin("pv").assert().success();
    by_pass(&["get", "p"]).assert().success().stdout("pv");
    // The [key] table of the file wins over the variable.
    let other = bare().args(["keygen", "--salt"]).output().unwrap().stdout;
    let salted = f.path("salted.toml");
    std::fs::write(
        &salted,
        format!(
            "{}[key]\npassphrase_salt = \"{}\"\n",
            std::fs::read_to_string(&f.config).unwrap(),
            String::from_utf8(other).unwrap().trim()
        ),
    )
    .unwrap();
    with_key(&salted, "--passphrase-file", &pass, &["get", "p"])
        .env("NEBULA_CREDENTIAL_SALT", salt.trim())
        .assert()
        .code(1);
}

#[test]
fn config_show_and_verbose_never_print_a_password_or_token_in_the_endpoint() {
    let f = Fixture::new();
    let path = f.path("vault.toml");
    std::fs::write(
        &path,
        "provider = \"vault\"\nendpoint = \"http://ops:hunter2-url-pw@127.0.0.1:1/?token=hunter2-query\"\n\
         allow_http = true\nauth = { method = \"token\", token = \"hunter2-vault-token\" }\n",
    )
    .unwrap();
    for args in [&["config", "show"][..], &["-vv", "config", "show"], &["doctor"]] {
        let out = bare().arg("--config").arg(&path).args(args).output().unwrap();
        let shown = text(&out);
        assert!(!shown.contains("hunter2"), "{args:?}: {shown}");
        assert!(shown.contains("127.0.0.1:1"), "{args:?}: {shown}");
    }
}
