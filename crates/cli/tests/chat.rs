//! `ember chat`: one reply for scripts, and the interactive loop driven through piped stdin.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::sft::tuned_model;
use crate::tokenizer::ember;

#[test]
fn one_reply_with_history_and_an_interactive_session_through_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let run = tuned_model(dir.path()).display().to_string();

    let out = ember(&[
        "chat",
        "--checkpoint",
        &run,
        "--device",
        "cpu",
        "--message",
        "Hello, how are you?",
        "--max-new-tokens",
        "40",
        "--temperature",
        "0",
    ]);
    assert!(out.ok, "{}", out.stderr);
    assert!(!out.stdout.trim().is_empty(), "a reply is printed");
    assert!(out.stderr.contains("tokens/s"), "{}", out.stderr);
    assert!(
        !out.stdout.contains("<|user|>"),
        "the reply never writes the user's turn: {}",
        out.stdout
    );

    let save = dir.path().join("conv.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args([
            "chat",
            "--checkpoint",
            &run,
            "--device",
            "cpu",
            "--max-new-tokens",
            "20",
            "--seed",
            "3",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let script = format!(
        "/system Be brief.\nhi\nwhat is your name?\n/save {}\n/reset\n/frobnicate\n/exit\n",
        save.display()
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("[system message set]")
            && stderr.contains("[conversation cleared]")
            && stderr.contains("unknown command /frobnicate"),
        "{stderr}"
    );
    let saved: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&save).unwrap().trim()).unwrap();
    let roles: Vec<&str> = saved["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["system", "user", "assistant", "user", "assistant"],
        "history kept across turns"
    );
    let first = saved["messages"][2]["content"].as_str().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with(first),
        "the streamed reply is the one kept"
    );

    // Ctrl-C is for stopping a reply: it never ends the chat itself.
    let mut child = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args([
            "chat",
            "--checkpoint",
            &run,
            "--device",
            "cpu",
            "--max-new-tokens",
            "5",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("tokens/s") {
                let _ = tx.send(());
            }
            all += &line;
            all.push('\n');
        }
        all
    });
    stdin.write_all(b"hi\n").unwrap();
    rx.recv_timeout(std::time::Duration::from_secs(120))
        .expect("first reply");
    assert!(
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    stdin.write_all(b"hello again\n/exit\n").unwrap();
    drop(stdin);
    let status = child.wait().unwrap();
    let stderr = reader.join().unwrap();
    assert!(
        status.success(),
        "the chat survived Ctrl-C and exited on /exit: {stderr}"
    );
    assert_eq!(
        stderr.matches("tokens/s").count(),
        2,
        "both messages were answered: {stderr}"
    );

    // The saved conversation continues non-interactively.
    let s = save.display().to_string();
    let out = ember(&[
        "chat",
        "--checkpoint",
        &run,
        "--device",
        "cpu",
        "--history",
        &s,
        "--message",
        "and then?",
        "--max-new-tokens",
        "10",
    ]);
    assert!(out.ok, "{}", out.stderr);
}
