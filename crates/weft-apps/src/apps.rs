//! Placeholder: being written.

/// The apps this node serves, their permissions and payment requests.
#[derive(Clone, Default)]
pub struct Apps {}
