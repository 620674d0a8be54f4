//! `betflow users …` and `betflow tokens …`: what an admin does from the
//! command line, checked through the API the accounts then call.

use reqwest::blocking::Client;
use reqwest::StatusCode;

use crate::common::TestEnv;

fn create(env: &TestEnv, args: &[&str], stdin: &str) -> String {
    use std::io::Write;
    let mut child = env
        .cmd(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn get(client: &Client, base: &str, token: &str) -> StatusCode {
    client
        .get(format!("{base}/api/v2/dags"))
        .bearer_auth(token)
        .send()
        .expect("GET")
        .status()
}

fn pause(client: &Client, base: &str, token: &str) -> StatusCode {
    client
        .patch(format!("{base}/api/v2/dags/example_etl"))
        .bearer_auth(token)
        .json(&serde_json::json!({"is_paused": true}))
        .send()
        .expect("PATCH")
        .status()
}

#[test]
fn users_and_tokens_are_managed_from_the_cli() {
    let mut env = TestEnv::start();
    let (_pid, base) = env.spawn_up();
    let client = Client::new();
    create(
        &env,
        &["users", "create", "--username", "ops", "--role", "operator"],
        "first-password\n",
    );
    let full = create(
        &env,
        &["tokens", "create", "--username", "ops", "--name", "ci"],
        "",
    )
    .trim()
    .to_owned();
    let read = create(
        &env,
        &[
            "tokens",
            "create",
            "--username",
            "ops",
            "--name",
            "grafana",
            "--read-only",
            "--expires-in",
            "90d",
        ],
        "",
    )
    .trim()
    .to_owned();

    // A read-only token reads and cannot act, whatever its user may do.
    assert_eq!(get(&client, &base, &read), StatusCode::OK);
    assert_eq!(pause(&client, &base, &read), StatusCode::FORBIDDEN);
    assert_eq!(pause(&client, &base, &full), StatusCode::OK);

    let list = env.ok(&["tokens", "list"]);
    assert!(list.contains("grafana") && list.contains("read"), "{list}");
    assert!(
        !list.contains(&full) && !list.contains(&read),
        "tokens are never shown again"
    );
    // Used twice within a minute: last_used_at written once.
    let used = |env: &TestEnv| env.scalar("SELECT last_used_at FROM api_tokens WHERE name = 'ci'");
    let first = used(&env);
    assert_eq!(get(&client, &base, &full), StatusCode::OK);
    assert_eq!(used(&env), first);

    // Disabled: its tokens stop at once; enabled again, they work.
    env.ok(&["users", "disable", "--username", "ops"]);
    assert_eq!(get(&client, &base, &full), StatusCode::UNAUTHORIZED);
    let users = env.ok(&["users", "list"]);
    assert!(
        users
            .lines()
            .any(|l| l.contains("ops") && l.contains("disabled")),
        "{users}"
    );
    env.ok(&["users", "enable", "--username", "ops"]);
    assert_eq!(get(&client, &base, &full), StatusCode::OK);

    // Another role applies to the next request.
    env.ok(&["users", "set-role", "--username", "ops", "--role", "viewer"]);
    assert_eq!(pause(&client, &base, &full), StatusCode::FORBIDDEN);

    // An expired token and a revoked one are refused.
    env.sql(
        "UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE name = 'grafana'",
    );
    assert_eq!(get(&client, &base, &read), StatusCode::UNAUTHORIZED);
    let id = env.scalar("SELECT id FROM api_tokens WHERE name = 'ci'");
    env.ok(&["tokens", "revoke", "--id", &id]);
    assert_eq!(get(&client, &base, &full), StatusCode::UNAUTHORIZED);
    let out = env.run(&["tokens", "revoke", "--id", &id]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "revoking twice is a usage error"
    );

    // A new password: the old one no longer logs in.
    let out = create(&env, &["users", "reset-password", "--username", "ops"], "");
    assert!(out.contains("password (shown once): "), "{out}");
    let new = out
        .split("password (shown once): ")
        .nth(1)
        .expect("the new password")
        .trim();
    let login = |password: &str| crate::common::viewer::login_status(&base, "ops", password);
    assert_ne!(
        login("first-password"),
        StatusCode::SEE_OTHER,
        "the old password is refused"
    );
    assert_eq!(login(new), StatusCode::SEE_OTHER, "the new one logs in");
    // Both tries are in the audit trail, with the address they came from.
    assert_eq!(
        env.sql(
            "SELECT event || ' ' || owner || ' ' || client FROM event_logs
             WHERE event LIKE 'login%' ORDER BY id"
        ),
        ["login_failed ops 127.0.0.1", "login ops 127.0.0.1"]
    );

    // Bad arguments are refused before anything is written.
    for args in [
        &["users", "set-role", "--username", "ops", "--role", "root"][..],
        &["users", "disable", "--username", "nobody"],
        &[
            "tokens",
            "create",
            "--username",
            "ops",
            "--expires-in",
            "soon",
        ],
    ] {
        let out = env.run(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            crate::common::stderr(&out)
        );
    }

    // What the CLI changed is in the audit trail too; what it refused is not.
    assert_eq!(
        env.sql("SELECT event FROM event_logs WHERE owner LIKE 'cli:%' ORDER BY id"),
        [
            "create_user",
            "create_token",
            "create_token",
            "disable_user",
            "enable_user",
            "set_role",
            "revoke_token",
            "reset_password",
        ]
    );
}

/// A token used by many requests at once, all of which may read its
/// `last_used_at` as stale: the row is written once, not once a request.
/// A trigger, created for the test, counts the row's real updates.
#[test]
fn a_token_used_by_parallel_requests_records_its_use_once() {
    let mut env = TestEnv::start();
    // Four web threads, so eight pool connections read the token at once.
    let (_pid, base) = env.spawn_up_with(&[("BETFLOW_WEB_THREADS", "4")]);
    create(
        &env,
        &["users", "create", "--username", "ops", "--role", "operator"],
        "first-password\n",
    );
    let token = create(
        &env,
        &["tokens", "create", "--username", "ops", "--name", "ci"],
        "",
    )
    .trim()
    .to_owned();
    env.sql(
        "CREATE TABLE token_writes (at timestamptz NOT NULL);
         CREATE FUNCTION count_token_write() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN INSERT INTO token_writes VALUES (now()); RETURN NEW; END $$;
         CREATE TRIGGER token_written AFTER UPDATE ON api_tokens
           FOR EACH ROW EXECUTE FUNCTION count_token_write()",
    );

    let client = Client::new();
    let burst = |token: &str| {
        let barrier = std::sync::Barrier::new(32);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..32)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        get(&client, &base, token)
                    })
                })
                .collect();
            for h in handles {
                assert_eq!(h.join().expect("request thread"), StatusCode::OK);
            }
        });
    };

    // Never used: every request of the burst finds it stale.
    burst(&token);
    assert_eq!(env.scalar("SELECT count(*) FROM token_writes"), "1");
    assert_eq!(
        env.scalar("SELECT last_used_at IS NOT NULL FROM api_tokens WHERE name = 'ci'"),
        "t"
    );

    // Last used two minutes ago: stale again, written once again.
    env.sql(
        "UPDATE api_tokens SET last_used_at = now() - interval '2 minutes' WHERE name = 'ci';
         DELETE FROM token_writes",
    );
    burst(&token);
    assert_eq!(env.scalar("SELECT count(*) FROM token_writes"), "1");
    assert_eq!(
        env.scalar(
            "SELECT last_used_at > now() - interval '1 minute' FROM api_tokens WHERE name = 'ci'"
        ),
        "t"
    );
}
