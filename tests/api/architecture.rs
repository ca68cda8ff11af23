//! The arrows point one way: domain ← application (commands) ← feed consumers (projections,
//! saga, chat delivery) ← surfaces (chat, http, cli) ← the composition root (app). Shared
//! mechanisms (the event feed and store, the job runtime, the ports) sit below everything
//! that uses them. This reads the sources and fails on an import that points up.

use std::collections::BTreeSet;
use std::path::Path;

/// What every room may use: the process's instruments, which every part counts into as it
/// logs (they use nothing but the configuration).
const EVERYWHERE: &[&str] = &["telemetry"];

/// Each room, and the rooms of the crate it may use besides itself. `fuzz` holds the test
/// inputs some unit tests share.
const MAY_USE: &[(&str, &[&str])] = &[
    ("domain", &["fuzz"]),
    ("ports", &[]),
    ("jobs", &[]),
    ("config", &["domain", "pki"]),
    ("telemetry", &["config"]),
    ("db", &["config"]),
    ("pki", &["domain", "fuzz"]),
    ("feed", &["domain", "db"]),
    ("eventstore", &["domain"]),
    ("adapters", &["domain", "pki", "ports", "fuzz"]),
    (
        "commands",
        &["domain", "pki", "db", "eventstore", "adapters", "ports"],
    ),
    (
        "projections",
        &["domain", "db", "feed", "eventstore", "adapters", "ports"],
    ),
    (
        "saga",
        &[
            "domain",
            "pki",
            "db",
            "feed",
            "eventstore",
            "jobs",
            "adapters",
            "ports",
            "commands",
        ],
    ),
    (
        "chat",
        &[
            "domain",
            "db",
            "feed",
            "eventstore",
            "jobs",
            "adapters",
            "ports",
            "commands",
            "projections",
            "fuzz",
        ],
    ),
    (
        "http",
        &[
            "domain",
            "feed",
            "jobs",
            "adapters",
            "ports",
            "commands",
            "projections",
            "chat",
        ],
    ),
];

/// The rooms of `crate::…` paths in a file's code (comments left out).
fn rooms_used(path: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path).expect("a source file");
    let mut rooms = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or_default();
        for (i, _) in code.match_indices("crate::") {
            let before = code[..i].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue; // e.g. `cert_assistant::` in a doc test
            }
            let room: String = code[i + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            rooms.insert(room);
        }
    }
    rooms
}

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a source directory") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_room_imports_a_room_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut wrong = Vec::new();
    for (room, allowed) in MAY_USE {
        let mut files = Vec::new();
        let dir = src.join(room);
        if dir.is_dir() {
            sources(&dir, &mut files);
        } else {
            files.push(src.join(format!("{room}.rs")));
        }
        assert!(!files.is_empty(), "no sources for {room}");
        for file in files {
            for used in rooms_used(&file) {
                if used != *room
                    && !allowed.contains(&used.as_str())
                    && !EVERYWHERE.contains(&used.as_str())
                {
                    wrong.push(format!(
                        "{} uses crate::{used}",
                        file.strip_prefix(&src).unwrap_or(&file).display()
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "arrows pointing up:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn only_the_event_store_and_the_feed_read_the_events_table() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut readers = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap_or(&file).to_owned();
        let first = relative
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned());
        // The store's own modules, and the operators' benchmarks, which count events.
        if matches!(first.as_deref(), Some("feed" | "eventstore" | "cli")) {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("a source file");
        if text.contains("FROM events") || text.contains("JOIN events") {
            readers.push(relative.display().to_string());
        }
    }
    assert!(
        readers.is_empty(),
        "SQL on `events` outside the event store: {readers:?}"
    );
}
