//! `ember chat`: talk to a fine-tuned model. Interactive (history kept, oldest turns trimmed to
//! fit the context, /commands) or one reply for scripts (`--message`).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use clap::Args;
use ember_model::checkpoint::Checkpoint;
use ember_model::{StopReason, checkpoint, generate};
use ember_tokenizer::{END, Keep, Message, Role, fit_conversation, render_prompt};

use crate::device_args::DeviceArgs;
use crate::sampling_args::SamplingArgs;

/// Flags of `ember chat`.
#[derive(Args, Debug)]
pub struct ChatArgs {
    /// Checkpoint directory, or a run directory (its newest complete checkpoint).
    #[arg(long)]
    checkpoint: PathBuf,
    /// System message that starts the conversation.
    #[arg(long)]
    system: Option<String>,
    /// Send this one message, print the reply and exit (no interaction).
    #[arg(long)]
    message: Option<String>,
    /// Conversation file for --message: read if it exists (a JSON line {"messages":[...]}, as
    /// /save writes), and the new exchange added to it; a missing or empty file starts anew.
    #[arg(long, requires = "message")]
    history: Option<PathBuf>,
    #[command(flatten)]
    sampling: SamplingArgs,
    #[command(flatten)]
    device: DeviceArgs,
}

const HELP: &str = "commands: /reset (forget the conversation), /system TEXT, /save FILE, /exit (or Ctrl-D); Ctrl-C stops a reply";

/// A conversation with the model.
struct Session {
    ck: Checkpoint,
    system: Option<String>,
    turns: Vec<Message>,
    sampling: SamplingArgs,
    stop: Arc<AtomicBool>,
}

impl Session {
    fn messages(&self) -> Vec<Message> {
        self.system
            .iter()
            .map(|s| Message::new(Role::System, s.clone()))
            .chain(self.turns.iter().cloned())
            .collect()
    }

    /// Adds the user's message, streams the reply to `out`, and keeps both in the history.
    fn reply(&mut self, text: &str, out: &mut impl Write) -> Result<String> {
        let tok = &self.ck.tokenizer;
        self.turns.push(Message::new(Role::User, text));
        let mut cfg = self.sampling.config();
        let room = self.ck.config.block_size;
        cfg.max_new_tokens = cfg.max_new_tokens.min(room.saturating_sub(2));
        // Every special token ends the reply: the model must never write the user's turn.
        cfg.stop_ids = ember_tokenizer::stop_ids(tok);
        // The oldest exchanges are left out of the prompt (not out of the conversation, which
        // /save and --history keep whole) until the prompt and the reply fit the context.
        let messages = self.messages();
        let budget = cfg.max_new_tokens;
        let mut prompt = Vec::new();
        let start = fit_conversation(&messages, Keep::LastTurn, |msgs| {
            prompt = render_prompt(tok, msgs)?;
            Ok::<_, ember_tokenizer::Error>(prompt.len() + budget <= room)
        })?;
        let sys = usize::from(self.system.is_some());
        let trimmed = start.map_or(0, |s| (s - sys) / 2);
        if trimmed > 0 {
            eprintln!(
                "[left out the {trimmed} oldest exchange(s) to fit the {room}-token context]"
            );
        }
        if prompt.len() + cfg.max_new_tokens > room {
            cfg.max_new_tokens = room.saturating_sub(prompt.len());
            if cfg.max_new_tokens == 0 {
                self.turns.pop();
                bail!(
                    "the message is {} tokens, too long for the {room}-token context",
                    prompt.len()
                );
            }
        }
        self.stop.store(false, Ordering::SeqCst);
        let stop = Arc::clone(&self.stop);
        let g = generate(&self.ck.model, tok, &prompt, &cfg, |piece| {
            write!(out, "{piece}").and_then(|_| out.flush()).is_ok() && !stop.load(Ordering::SeqCst)
        })?;
        writeln!(out)?;
        let why = match g.stop {
            StopReason::StopToken(id) if Some(id) == tok.token_to_id(END) => {
                "end of turn".to_string()
            }
            StopReason::StopToken(id) => format!(
                "stopped at {}",
                String::from_utf8_lossy(tok.id_to_bytes(id).unwrap_or_default())
            ),
            StopReason::MaxTokens => "token limit reached before the end of turn".to_string(),
            StopReason::Cancelled => "stopped".to_string(),
            StopReason::StopString(s) => format!("stop string {s:?}"),
        };
        eprintln!(
            "[{} tokens, {:.1} tokens/s, {why}]",
            g.ids.len(),
            g.tokens_per_sec
        );
        self.turns
            .push(Message::new(Role::Assistant, g.text.clone()));
        Ok(g.text)
    }

    fn save(&self, path: &std::path::Path) -> Result<()> {
        let msgs: Vec<serde_json::Value> = self
            .messages()
            .iter()
            .map(|m| serde_json::json!({"role": m.role.as_str(), "content": m.content}))
            .collect();
        let line = serde_json::to_string(&serde_json::json!({"messages": msgs}))? + "\n";
        ember_files::write_atomic(path, line.as_bytes())
            .with_context(|| format!("saving {}", path.display()))
    }
}

/// Reads a conversation saved by `/save` (or by an earlier `--message --history` call): one
/// JSON line `{"messages": [...]}`, an optional system message first, then user and assistant
/// turns in turn, ending with the assistant's. A missing or empty file is a new conversation.
pub fn read_history(path: &std::path::Path) -> Result<(Option<String>, Vec<Message>)> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((None, Vec::new())),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let p = path.display();
    let text = String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{p}: not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })?;
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .collect();
    let Some(&(n, line)) = lines.first() else {
        return Ok((None, Vec::new()));
    };
    if lines.len() > 1 {
        bail!(
            "{p}:{}: a second line; a chat history is one JSON line {{\"messages\": [...]}} as /save writes",
            lines[1].0 + 1
        );
    }
    let line_no = n + 1;
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| anyhow::anyhow!("{p}:{line_no}: not JSON ({e})"))?;
    let Some(messages) = v.get("messages").and_then(|m| m.as_array()) else {
        bail!("{p}:{line_no}: expected an object with a \"messages\" array, as /save writes");
    };
    let mut system = None;
    let mut turns: Vec<Message> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let role = m
            .get("role")
            .and_then(|r| r.as_str())
            .and_then(Role::parse)
            .with_context(|| {
                format!(
                    "{p}: messages[{i}]: role {} is not one of system, user, assistant",
                    m.get("role").cloned().unwrap_or_default()
                )
            })?;
        let content = m
            .get("content")
            .and_then(|c| c.as_str())
            .with_context(|| format!("{p}: messages[{i}]: no \"content\" string"))?
            .to_string();
        let expected = if turns.len().is_multiple_of(2) {
            Role::User
        } else {
            Role::Assistant
        };
        match role {
            Role::System if i == 0 => system = Some(content),
            Role::System => bail!("{p}: messages[{i}]: a system message is only allowed first"),
            r if r == expected => turns.push(Message::new(r, content)),
            r => bail!(
                "{p}: messages[{i}]: a {} turn where the {} was expected (turns alternate, starting with the user)",
                r.as_str(),
                expected.as_str()
            ),
        }
    }
    if turns.last().is_some_and(|m| m.role == Role::User) {
        bail!(
            "{p}: messages[{}]: the conversation ends with the user's turn, which has no reply; a history ends with the assistant's",
            messages.len() - 1
        );
    }
    Ok((system, turns))
}

/// Runs `ember chat`.
pub fn run(a: ChatArgs) -> Result<()> {
    if a.message.as_ref().is_some_and(|m| m.trim().is_empty()) {
        bail!("--message is empty; expected the text of a message to reply to");
    }
    // A bad history is refused before the model is loaded.
    let history = match (&a.history, &a.message) {
        (Some(h), Some(_)) => Some(read_history(h)?),
        _ => None,
    };
    let selected = a.device.select()?;
    let path = ember_formats::resolve_checkpoint(&a.checkpoint);
    let ck = checkpoint::load(&path, &selected.device)
        .with_context(|| format!("loading {}", path.display()))?;
    ember_tokenizer::ChatTokens::of(&ck.tokenizer).context("this checkpoint cannot chat")?;
    let stop = Arc::new(AtomicBool::new(false));
    let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&stop));
    let mut s = Session {
        ck,
        system: a.system.clone(),
        turns: Vec::new(),
        sampling: a.sampling.clone(),
        stop,
    };
    let mut out = std::io::stdout();
    if let Some(msg) = &a.message {
        if let Some((sys, turns)) = history {
            s.system = a.system.clone().or(sys);
            s.turns = turns;
        }
        s.reply(msg, &mut out)?;
        // The exchange is added to the history file, so a script can hold a conversation
        // across calls; the file is replaced atomically, so it is never half-written.
        if let Some(h) = &a.history {
            s.save(h)?;
        }
        return Ok(());
    }
    let tty = std::io::stdin().is_terminal();
    if tty {
        eprintln!("chatting with {} ({HELP})", path.display());
    }
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        if tty {
            eprint!("you> ");
        }
        let Some(line) = lines.next() else { break };
        let line = line?;
        let line = line.trim();
        match line
            .split_once(' ')
            .map_or((line, ""), |(c, r)| (c, r.trim()))
        {
            ("", _) => continue,
            ("/exit" | "/quit", _) => break,
            ("/reset", _) => {
                s.turns.clear();
                eprintln!("[conversation cleared]");
            }
            ("/system", text) => {
                s.system = (!text.is_empty()).then(|| text.to_string());
                eprintln!(
                    "[system message {}]",
                    if text.is_empty() { "removed" } else { "set" }
                );
            }
            ("/save", file) if !file.is_empty() => match s.save(std::path::Path::new(file)) {
                Ok(()) => eprintln!("[saved to {file}]"),
                Err(e) => eprintln!("error: {e:#}"),
            },
            (c, _) if c.starts_with('/') => eprintln!("unknown command {c}; {HELP}"),
            _ => {
                if tty {
                    eprint!("ember> ");
                }
                if let Err(e) = s.reply(line, &mut out) {
                    eprintln!("error: {e:#}");
                }
            }
        }
    }
    Ok(())
}
