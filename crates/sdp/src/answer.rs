//! The check of an answer against its offer (RFC 3264 §6).
//!
//! An answer has exactly the offer's `m=` lines, in the same order and of the same media types
//! (§6); a stream the offer rejected (port 0) stays rejected (§6); and an accepted stream lists
//! at least one format, each one offered (§6.1): a static payload type (below 96) by number, a
//! dynamic one by encoding name and clock rate (the answerer may renumber it), a non-RTP format
//! by name.

use std::fmt;

use crate::media::{Media, same_format};
use crate::session::Sdp;

/// Why an answer does not fit its offer. `index` counts media sections from 0.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AnswerError {
    /// Not as many `m=` lines as the offer.
    MediaCount { offered: usize, answered: usize },
    /// A media type other than the offer's at the same position.
    KindMismatch {
        index: usize,
        offered: String,
        answered: String,
    },
    /// A stream the offer rejected (port 0) that the answer accepts.
    RejectedStreamAccepted { index: usize },
    /// An accepted stream without any format.
    NoFormat { index: usize },
    /// An accepted stream with a format the offer did not have.
    FormatNotOffered { index: usize, format: String },
}

impl fmt::Display for AnswerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnswerError::MediaCount { offered, answered } => {
                write!(f, "answer has {answered} media streams, the offer {offered}")
            }
            AnswerError::KindMismatch {
                index,
                offered,
                answered,
            } => write!(f, "answer stream {index} is {answered}, the offer's is {offered}"),
            AnswerError::RejectedStreamAccepted { index } => {
                write!(f, "answer accepts stream {index}, which the offer rejected")
            }
            AnswerError::NoFormat { index } => write!(f, "answer stream {index} is accepted without a format"),
            AnswerError::FormatNotOffered { index, format } => {
                write!(f, "answer stream {index} has format {format}, not offered")
            }
        }
    }
}

impl std::error::Error for AnswerError {}

/// Checks `answer` against `offer`: see the module documentation.
pub fn check_answer(offer: &Sdp, answer: &Sdp) -> Result<(), AnswerError> {
    if offer.media.len() != answer.media.len() {
        return Err(AnswerError::MediaCount {
            offered: offer.media.len(),
            answered: answer.media.len(),
        });
    }
    for (index, (o, a)) in offer.media().zip(answer.media()).enumerate() {
        if !o.kind().eq_ignore_ascii_case(a.kind()) {
            return Err(AnswerError::KindMismatch {
                index,
                offered: o.kind().to_owned(),
                answered: a.kind().to_owned(),
            });
        }
        if a.is_rejected() {
            continue;
        }
        if o.is_rejected() {
            return Err(AnswerError::RejectedStreamAccepted { index });
        }
        if a.formats().is_empty() {
            return Err(AnswerError::NoFormat { index });
        }
        if let Some(format) = a.formats().iter().find(|f| !offered(&o, &a, f)) {
            return Err(AnswerError::FormatNotOffered {
                index,
                format: format.clone(),
            });
        }
    }
    Ok(())
}

/// Whether `format` of answer stream `a` was offered in offer stream `o`.
fn offered(o: &Media<'_>, a: &Media<'_>, format: &str) -> bool {
    if !a.is_rtp() || !o.is_rtp() {
        return o.formats().iter().any(|f| f == format);
    }
    let is_static = format.parse::<u8>().is_ok_and(|pt| pt < 96);
    if is_static && o.formats().iter().any(|f| same_format(f, format)) {
        return true;
    }
    let Some(codec) = a.codec_of(format) else {
        return false;
    };
    o.formats()
        .iter()
        .filter_map(|f| o.codec_of(f))
        .any(|c| c.same_codec(&codec))
}
