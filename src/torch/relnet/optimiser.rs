//! The optimisation: the training settings with their learning-rate schedule (and the named
//! [`Schedule`]s that fill them in), Adam with its state saved beside each checkpoint, and
//! the clipping of the gradients' norm.

use std::path::Path;

use tch::{Kind, Tensor};

use super::net::TorchRelationNet;
use super::persistence::written_whole;
use crate::error::{Error, Result};

/// Training settings.
#[derive(Clone, Debug)]
pub struct TrainSettings {
    /// The last epoch to train (`--epochs`; a resumed run goes on to it).
    pub epochs: usize,
    /// Questions per Adam step (`--batch`; the last step of an epoch may have fewer).
    pub batch: usize,
    /// The learning rate of the first epoch.
    pub learning_rate: f64,
    /// Doubles the learning rate every `.0` epochs, up to `.1` (the reference's CLEVR
    /// schedule: every 20 epochs from 5e-6 to 5e-4).
    pub doubling: Option<(usize, f64)>,
    /// Adam's L2 penalty (PyTorch's `weight_decay`: `g += λ p` before the moments).
    pub weight_decay: f64,
    /// Scales the gradients down to this total norm where they exceed it
    /// (`clip_grad_norm_`).
    pub clip: Option<f64>,
    /// The reference's image augmentation ([`crate::repro::clevr::augment`], CLEVR only).
    pub augment: bool,
    /// `--seed`: seeds libtorch's initialisation and the question order (epoch `e`: ChaCha8
    /// stream `e`; the augmentation: stream `2^32 + e`).
    pub seed: u64,
}

impl TrainSettings {
    /// The learning rate of `epoch` (1-based).
    pub fn learning_rate(&self, epoch: usize) -> f64 {
        match self.doubling {
            None => self.learning_rate,
            Some((every, max)) => {
                let doublings = ((epoch - 1) / every.max(1)).min(64) as i32;
                (self.learning_rate * 2f64.powi(doublings)).min(max)
            }
        }
    }
}

/// A named schedule, as `relnet train --schedule` chooses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// Adam with a constant learning rate; by default batch 64 and learning rate 1e-4.
    Plain,
    /// CLEVR's reference schedule: batch 640, learning rate 5e-6 doubled every 20 epochs up
    /// to 5e-4, Adam weight decay 1e-4, gradients clipped to norm 50, images augmented.
    Reference,
}

impl Schedule {
    /// `plain` or `reference` (`--schedule`).
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "plain" => Ok(Self::Plain),
            "reference" => Ok(Self::Reference),
            other => Err(Error::Usage(format!(
                "--schedule '{other}': expected plain or reference"
            ))),
        }
    }

    /// The name `--schedule` takes and `training.json` records.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Reference => "reference",
        }
    }

    /// Questions per step unless given.
    pub fn default_batch(self) -> usize {
        match self {
            Self::Plain => 64,
            Self::Reference => 640,
        }
    }

    /// The first epoch's learning rate unless given.
    pub fn default_learning_rate(self) -> f64 {
        match self {
            Self::Plain => 1e-4,
            Self::Reference => 5e-6,
        }
    }

    /// The settings of this schedule with `batch` questions per step and `learning_rate` in
    /// the first epoch.
    pub fn settings(
        self,
        epochs: usize,
        batch: usize,
        learning_rate: f64,
        seed: u64,
    ) -> TrainSettings {
        let reference = self == Self::Reference;
        TrainSettings {
            epochs,
            batch,
            learning_rate,
            doubling: reference.then_some((20, 5e-4)),
            weight_decay: if reference { 1e-4 } else { 0.0 },
            clip: reference.then_some(50.0),
            augment: reference,
            seed,
        }
    }
}

/// Adam (Kingma and Ba; PyTorch's update: `p −= lr/(1 − β1^t) · m / (√v/√(1 − β2^t) + ε)`)
/// over the network's trainable parameters, with its state (the moments and the step count)
/// saved beside each checkpoint so that a resumed run continues exactly.
pub struct Adam {
    names: Vec<String>,
    params: Vec<Tensor>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    step: i64,
}

/// The factor that scales `grads` down to total norm `max` where their norm exceeds it
/// (`max / (norm + 1e-6)`, as PyTorch's `clip_grad_norm_`), or `None`.
pub fn clip_scale(grads: &[Tensor], max: f64) -> Option<f64> {
    let squares: f64 = grads
        .iter()
        .filter(|g| g.defined())
        .map(|g| {
            g.to_kind(Kind::Double)
                .square()
                .sum(Kind::Double)
                .double_value(&[])
        })
        .sum();
    let norm = squares.sqrt();
    (norm > max).then(|| max / (norm + 1e-6))
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPSILON: f64 = 1e-8;

impl Adam {
    /// Adam over `net`'s trainable parameters, with zero moments at step 0.
    pub fn new(net: &TorchRelationNet) -> Self {
        let mut named: Vec<(String, Tensor)> = net
            .vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let (names, params): (Vec<String>, Vec<Tensor>) = named.into_iter().unzip();
        let zeros = |ps: &[Tensor]| ps.iter().map(Tensor::zeros_like).collect();
        Self {
            m: zeros(&params),
            v: zeros(&params),
            names,
            params,
            step: 0,
        }
    }

    /// One step on the gradients of `loss` with `learning_rate`; `weight_decay` adds `λ p`
    /// to each gradient, and `clip` scales the gradients down to that total norm where
    /// they exceed it (PyTorch's `clip_grad_norm_`, before the decay is added).
    pub fn backward_step(
        &mut self,
        loss: &Tensor,
        learning_rate: f64,
        weight_decay: f64,
        clip: Option<f64>,
    ) {
        for p in &mut self.params {
            p.zero_grad();
        }
        loss.backward();
        let _guard = tch::no_grad_guard();
        let grads: Vec<Tensor> = self.params.iter().map(Tensor::grad).collect();
        let scale = clip.and_then(|max| clip_scale(&grads, max));
        self.step += 1;
        let bc1 = 1.0 - BETA1.powi(self.step as i32);
        let bc2 = 1.0 - BETA2.powi(self.step as i32);
        for (((p, m), v), g) in self
            .params
            .iter_mut()
            .zip(&mut self.m)
            .zip(&mut self.v)
            .zip(grads)
        {
            if !g.defined() {
                continue;
            }
            let mut g = match scale {
                Some(s) => g * s,
                None => g,
            };
            if weight_decay != 0.0 {
                g += &*p * weight_decay;
            }
            m.copy_(&(&*m * BETA1 + &g * (1.0 - BETA1)));
            v.copy_(&(&*v * BETA2 + &g * &g * (1.0 - BETA2)));
            let denom = v.sqrt() / bc2.sqrt() + EPSILON;
            let update = &*m / denom * (learning_rate / bc1);
            p.copy_(&(&*p - update));
        }
    }

    /// Writes the moments and the step count to `path` (safetensors).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut named: Vec<(String, Tensor)> = Vec::new();
        for (name, (m, v)) in self.names.iter().zip(self.m.iter().zip(&self.v)) {
            named.push((format!("m.{name}"), m.shallow_clone()));
            named.push((format!("v.{name}"), v.shallow_clone()));
        }
        named.push(("step".into(), Tensor::from_slice(&[self.step])));
        written_whole(path, |tmp| Tensor::write_safetensors(&named, tmp))
    }

    /// Reads the state [`Self::save`] wrote.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let named = Tensor::read_safetensors(path)
            .map_err(|e| Error::file(path, format!("not an optimiser state: {e}")))?;
        let map: std::collections::HashMap<String, Tensor> = named.into_iter().collect();
        let get = |key: &str| {
            map.get(key)
                .ok_or_else(|| Error::file(path, format!("no tensor '{key}'")))
        };
        let _guard = tch::no_grad_guard();
        for (name, (m, v)) in self.names.iter().zip(self.m.iter_mut().zip(&mut self.v)) {
            for (t, key) in [(m, format!("m.{name}")), (v, format!("v.{name}"))] {
                let stored = get(&key)?;
                if stored.size() != t.size() {
                    return Err(Error::file(path, format!("'{key}' has the wrong shape")));
                }
                t.copy_(stored);
            }
        }
        self.step = get("step")?.int64_value(&[0]);
        Ok(())
    }
}
