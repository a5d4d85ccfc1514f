//! The chat template: a conversation rendered to ids, with the per-token loss mask SFT trains on.
//!
//! ```text
//! <|endoftext|> [<|system|> SYSTEM <|end|>] <|user|> USER <|end|> <|assistant|> REPLY <|end|> …
//! ```
//!
//! The mask is 1 on every assistant reply's tokens and its `<|end|>` (the model learns to end
//! its turn), 0 on the rest: the leading `<|endoftext|>`, role markers, system and user text.
//! Message text is encoded as ordinary text, so a user who types `<|assistant|>` gets the
//! characters, never the special id. To ask the model for a reply, [`render_prompt`] adds the
//! `<|assistant|>` marker after the conversation; the reply ends at `<|end|>`.

use crate::error::{Error, Result};
use crate::tokenizer::{ASSISTANT, END, ENDOFTEXT, SYSTEM, Tokenizer, USER};

/// The template as Jinja, for Hugging Face `tokenizer_config.json` (`apply_chat_template`):
/// it renders the same special-token string that [`render_chat`]/[`render_prompt`] encode.
/// (Hugging Face parses special-token strings typed inside messages as special tokens; Ember
/// does not, so the two agree on every conversation that does not contain one.)
pub const CHAT_TEMPLATE: &str = "{{- '<|endoftext|>' -}}{%- for message in messages -%}{{- '<|' + message['role'] + '|>' + message['content'] + '<|end|>' -}}{%- endfor -%}{%- if add_generation_prompt -%}{{- '<|assistant|>' -}}{%- endif -%}";

/// Who speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Instructions for the assistant, first in a conversation.
    System,
    /// The person.
    User,
    /// The model.
    Assistant,
}

impl Role {
    /// The role's name in `{"role": …}` JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }

    /// Parses a JSON role name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "system" => Some(Role::System),
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
            _ => None,
        }
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Its text.
    pub content: String,
}

impl Message {
    /// A message.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Message {
            role,
            content: content.into(),
        }
    }
}

/// A rendered conversation: ids and a 0/1 mask of the same length (1 = trained target).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rendered {
    /// Token ids.
    pub ids: Vec<u32>,
    /// 1 where the token is a trained target (assistant text and its end-of-turn).
    pub mask: Vec<u8>,
    /// Index in `ids` where each message starts (its role marker), in message order.
    pub starts: Vec<usize>,
}

/// Ids of the chat's special tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatTokens {
    /// `<|endoftext|>`.
    pub bos: u32,
    /// `<|system|>`.
    pub system: u32,
    /// `<|user|>`.
    pub user: u32,
    /// `<|assistant|>`.
    pub assistant: u32,
    /// `<|end|>`.
    pub end: u32,
}

impl ChatTokens {
    /// The chat tokens of `tok`, or an error naming the one it lacks.
    pub fn of(tok: &Tokenizer) -> Result<ChatTokens> {
        let get = |t: &str| {
            tok.token_to_id(t).ok_or_else(|| Error::MissingSpecial {
                token: t.to_string(),
                needed_for: "the chat template",
            })
        };
        Ok(ChatTokens {
            bos: get(ENDOFTEXT)?,
            system: get(SYSTEM)?,
            user: get(USER)?,
            assistant: get(ASSISTANT)?,
            end: get(END)?,
        })
    }

    fn marker(&self, role: Role) -> u32 {
        match role {
            Role::System => self.system,
            Role::User => self.user,
            Role::Assistant => self.assistant,
        }
    }
}

/// Renders `messages` with the template and its loss mask.
pub fn render_chat(tok: &Tokenizer, messages: &[Message]) -> Result<Rendered> {
    let t = ChatTokens::of(tok)?;
    let mut r = Rendered {
        ids: vec![t.bos],
        mask: vec![0],
        starts: Vec::with_capacity(messages.len()),
    };
    for m in messages {
        r.starts.push(r.ids.len());
        r.ids.push(t.marker(m.role));
        r.mask.push(0);
        let before = r.ids.len();
        tok.encode_into(&m.content, &mut r.ids);
        r.ids.push(t.end);
        let trained = u8::from(m.role == Role::Assistant);
        r.mask.resize(before, 0);
        r.mask.resize(r.ids.len(), trained);
    }
    Ok(r)
}

/// Ids that ask for the next assistant reply: the conversation, then `<|assistant|>`.
pub fn render_prompt(tok: &Tokenizer, messages: &[Message]) -> Result<Vec<u32>> {
    let t = ChatTokens::of(tok)?;
    let mut ids = render_chat(tok, messages)?.ids;
    ids.push(t.assistant);
    Ok(ids)
}

/// Ids that end a reply: every special token, so a model never writes the user's turn (or a
/// system message) for them. One definition for `ember chat`, the reply sampling of `ember sft`
/// and the evaluation's samples.
pub fn stop_ids(tok: &Tokenizer) -> Vec<u32> {
    [END, USER, SYSTEM, ASSISTANT, ENDOFTEXT]
        .iter()
        .filter_map(|s| tok.token_to_id(s))
        .collect()
}

/// What [`fit_conversation`] must keep when it drops old exchanges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// At least one assistant turn (a training row needs a reply to train on).
    AReply,
    /// The last message (a prompt: the user turn being answered).
    LastTurn,
}

/// Fits a conversation to a context: drops its oldest whole exchanges (a user turn through the
/// assistant reply that answers it) after the system message until `fits` accepts the rest.
/// Returns the index of the first message kept after the system message (0 or 1 when nothing
/// was dropped), or `None` when no exchange can be dropped without losing what `keep` names
/// and the rest still does not fit. No turn is ever cut in the middle.
///
/// One rule for every place that fits a conversation: training rows (`Keep::AReply`; `fits`:
/// the rendered conversation has at most context + 1 ids), reply prompts and `ember chat`
/// (`Keep::LastTurn`; the prompt plus the reply's token budget fits the context).
///
/// ```
/// use ember_tokenizer::chat::{Keep, fit_conversation};
/// use ember_tokenizer::{Message, Role};
///
/// let m = |r, t: &str| Message::new(r, t);
/// let conv = [
///     m(Role::System, "be brief"),
///     m(Role::User, "one"), m(Role::Assistant, "1"),
///     m(Role::User, "two"), m(Role::Assistant, "2"),
///     m(Role::User, "three"),
/// ];
/// // Only conversations of at most four messages fit: the oldest exchange goes.
/// let start = fit_conversation(&conv, Keep::LastTurn, |msgs| Ok::<_, ()>(msgs.len() <= 4));
/// assert_eq!(start, Ok(Some(3)));
/// assert_eq!(fit_conversation(&conv, Keep::LastTurn, |_| Ok::<_, ()>(false)), Ok(None));
/// ```
pub fn fit_conversation<E>(
    messages: &[Message],
    keep: Keep,
    mut fits: impl FnMut(&[Message]) -> std::result::Result<bool, E>,
) -> std::result::Result<Option<usize>, E> {
    let sys = usize::from(messages.first().is_some_and(|m| m.role == Role::System));
    let mut start = sys;
    loop {
        let kept: Vec<Message> = messages[..sys]
            .iter()
            .chain(&messages[start..])
            .cloned()
            .collect();
        if fits(&kept)? {
            return Ok(Some(start));
        }
        // Drop the oldest exchange: through the first assistant turn after `start`.
        let Some(a) = messages[start..]
            .iter()
            .position(|m| m.role == Role::Assistant)
        else {
            return Ok(None);
        };
        let rest = &messages[start + a + 1..];
        let can = match keep {
            Keep::AReply => rest.iter().any(|m| m.role == Role::Assistant),
            Keep::LastTurn => !rest.is_empty(),
        };
        if !can {
            return Ok(None);
        }
        start += a + 1;
    }
}
