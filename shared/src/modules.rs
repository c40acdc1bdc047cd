//! The analysis modules, and which of them a process serves. Each Cloud Run function
//! serves one; `ongi serve` serves all of them in one process.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Module {
    Embedding,
    Category,
    Duplicate,
    Quality,
    Score,
    People,
    Style,
}

impl Module {
    pub const ALL: [Module; 7] = [
        Module::Embedding,
        Module::Category,
        Module::Duplicate,
        Module::Quality,
        Module::Score,
        Module::People,
        Module::Style,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Module::Embedding => "embedding",
            Module::Category => "category",
            Module::Duplicate => "duplicate",
            Module::Quality => "quality",
            Module::Score => "score",
            Module::People => "people",
            Module::Style => "style",
        }
    }

    /// Whether this module has a per-photo step fed by the `ongi-features` topic.
    pub fn has_per_photo_step(self) -> bool {
        matches!(
            self,
            Module::Category | Module::Quality | Module::Score | Module::People
        )
    }
}

impl fmt::Display for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The set of modules one process serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Modules(Vec<Module>);

impl Modules {
    pub fn all() -> Self {
        Self(Module::ALL.to_vec())
    }

    pub fn only(module: Module) -> Self {
        Self(vec![module])
    }

    pub fn contains(&self, module: Module) -> bool {
        self.0.contains(&module)
    }

    pub fn iter(&self) -> impl Iterator<Item = Module> + '_ {
        self.0.iter().copied()
    }

    /// `ongi` when every module is served, else the module's name (for logs and metrics).
    pub fn service_name(&self) -> String {
        if self.0.len() == Module::ALL.len() {
            "ongi".to_owned()
        } else {
            self.0.iter().map(|m| m.name()).collect::<Vec<_>>().join("+")
        }
    }
}
