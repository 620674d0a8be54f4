//! Airflow's official Python client (`apache-airflow-client` 3.3.x) against
//! `betflow up`: `tests/it/airflow_client_check.py` lists, triggers, follows,
//! reads logs and clears through it, and the client validates every
//! response against Airflow's models.
//!
//! The interpreter is `$BETFLOW_PYTHON` (scripts/test points it at a venv
//! with the client installed), else `python3`. Without the client this test
//! fails and says how to get it: a compatibility check that silently passes
//! checks nothing.

use std::path::Path;
use std::process::Command;

use crate::common::TestEnv;

fn python() -> String {
    std::env::var("BETFLOW_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

#[test]
fn airflows_python_client_works_against_the_api() {
    let python = python();
    let probe = Command::new(&python)
        .args(["-c", "import airflow_client.client"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`{python}` cannot import airflow_client ({}); run scripts/test, which installs \
             apache-airflow-client 3.3.x into a venv and sets BETFLOW_PYTHON, or set BETFLOW_PYTHON \
             to a Python that has it",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or_default()
        ),
        Err(e) => panic!(
            "cannot run `{python}` ({e}); run scripts/test, which creates a venv with \
             apache-airflow-client and sets BETFLOW_PYTHON"
        ),
    }

    let mut env = TestEnv::start();
    let (_pid, base) = env.spawn_up();
    env.create_user("olga", "operator", "operator-pass");
    let token = env.token("olga");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/airflow_client_check.py");
    let out = Command::new(&python)
        .arg(&script)
        .args([&base, &token])
        .output()
        .expect("run the client check");
    assert!(
        out.status.success(),
        "{} failed ({:?})\nstdout:\n{}\nstderr:\n{}\nserver log:\n{}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        env.proc_log(0)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("airflow client checks passed"),
        "the script ended without finishing its checks"
    );
}
