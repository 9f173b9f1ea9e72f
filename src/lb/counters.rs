//! Counter sets: a struct of `u64` counters, one doc line each, that knows
//! its own field names and can be copied out and summed whole — so a
//! counter added to a set is published, summed and printed everywhere
//! without anyone copying it by hand.
#![forbid(unsafe_code)]

/// Defines `pub struct $ty` of `u64` counters with `NAMES`, `LEN`,
/// `values()`, `from_values()` and `add()`.
macro_rules! counter_set {
    ($(#[$meta:meta])* pub struct $ty:ident { $( $(#[doc = $doc:literal])* $name:ident, )* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $ty {
            $( $(#[doc = $doc])* pub $name: u64, )*
        }

        impl $ty {
            /// The counters' names, in [`Self::values`] order.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($name),)*];
            /// How many counters the set has.
            pub const LEN: usize = Self::NAMES.len();

            /// Every counter, in [`Self::NAMES`] order.
            pub fn values(&self) -> [u64; Self::LEN] {
                [$(self.$name,)*]
            }

            /// The set from values in [`Self::NAMES`] order.
            pub fn from_values(v: [u64; Self::LEN]) -> Self {
                let [$($name,)*] = v;
                $ty { $($name,)* }
            }

            /// Adds `o` into `self`, counter by counter.
            pub fn add(&mut self, o: &Self) {
                $( self.$name += o.$name; )*
            }
        }
    };
}

pub(crate) use counter_set;

#[cfg(test)]
mod tests {
    counter_set! {
        /// Two counters.
        pub struct Pair {
            /// First.
            a,
            /// Second.
            b,
        }
    }

    #[test]
    fn names_values_roundtrip_and_sum() {
        assert_eq!(Pair::NAMES, ["a", "b"]);
        let p = Pair { a: 3, b: 5 };
        assert_eq!(p.values(), [3, 5]);
        assert_eq!(Pair::from_values(p.values()), p);
        let mut q = p;
        q.add(&p);
        assert_eq!(q, Pair { a: 6, b: 10 });
    }
}
