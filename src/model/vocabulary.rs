//! The word and answer dictionaries of a relation network that reads question text (CLEVR),
//! and the tokenizer that splits a question into its words.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// The reference tokenizer: punctuation `.,;:!?()` split off as tokens, whitespace
/// collapsed, lower case.
pub fn tokenize(sentence: &str) -> Vec<String> {
    let mut spaced = String::with_capacity(sentence.len() + 8);
    for ch in sentence.chars() {
        if ".,;:!?()".contains(ch) {
            spaced.push(' ');
            spaced.push(ch);
            spaced.push(' ');
        } else {
            spaced.push(ch);
        }
    }
    spaced.split_whitespace().map(str::to_lowercase).collect()
}

/// Word and answer dictionaries, 1-based in order of first appearance, as the reference
/// builds them: 0 pads a question, and the reference network's 29 outputs hold CLEVR's 28
/// answers at 1..=28.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Vocabulary {
    /// Question word → its index, from 1 (0 pads a question).
    pub words: HashMap<String, usize>,
    /// Answer → the network output that gives it, from 1 (1..=28 for CLEVR).
    pub answers: HashMap<String, usize>,
}

impl Vocabulary {
    /// The word indices of `text` ([`tokenize`]), or the first word outside the dictionary.
    pub fn words_of(&self, text: &str) -> std::result::Result<Vec<usize>, String> {
        tokenize(text)
            .into_iter()
            .map(|w| self.words.get(&w).copied().ok_or(w))
            .collect()
    }
}
