mod child;

pub use child::*;
