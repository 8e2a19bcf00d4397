//! The command line: check-config on good and bad configurations.

use std::process::Command;

fn broker() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_oidc-broker"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

#[test]
fn check_config_reports_every_mistake_with_its_key_and_a_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"
[server]
public_url = "ftp://auth.example.com"
[session]
idle_timeout = "half an hour"
[providers.corp]
kind = "oidc"
issuer = "https://idp.example.com"
client_id = "abc"
"#,
    )
    .unwrap();
    let out = broker()
        .args(["check-config", "--config"])
        .arg(&path)
        .env_remove("BROKER_PROVIDERS__CORP__CLIENT_SECRET")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("3 problem(s)"), "{err}");
    for key in [
        "server.public_url",
        "session.idle_timeout",
        "providers.corp.client_secret",
    ] {
        assert!(err.contains(key), "{key} missing from:\n{err}");
    }
    assert!(err.contains("fix:"), "{err}");
}

#[test]
fn environment_variables_fill_in_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[providers.corp]\nkind = \"oidc\"\nissuer = \"https://idp.example.com\"\nclient_id = \"abc\"\n").unwrap();
    let out = broker()
        .args(["check-config", "--config"])
        .arg(&path)
        .env("BROKER_PROVIDERS__CORP__CLIENT_SECRET", "from-env")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_example_provider_config_is_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("providers");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            seen += 1;
            let out = broker()
                .args(["check-config", "--config"])
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    assert!(seen >= 2);
}
