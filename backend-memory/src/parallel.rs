//! Work split between threads by key groups: contiguous parts of about equal weight, each
//! run on a thread of its own (snapshot writes, restore reads and restore decoding).

use cornerstone_backend_api::{Error, KeyGroupRange, Result};

/// Splits `range` into at most `max_parts` contiguous parts of about equal weight, each
/// weighing at least `min_weight` (one part when the total is below twice that).
/// `weights[i]` is the weight of key group `range.first() + i`.
pub(crate) fn split(
    range: KeyGroupRange,
    weights: &[u64],
    min_weight: u64,
    max_parts: usize,
) -> Vec<KeyGroupRange> {
    let total: u64 = weights.iter().sum();
    let count = usize::try_from(total / min_weight.max(1))
        .unwrap_or(usize::MAX)
        .min(max_parts)
        .min(weights.len())
        .max(1);
    if count == 1 {
        return vec![range];
    }
    let mut parts = Vec::with_capacity(count);
    let (mut first, mut sum) = (range.first(), 0u64);
    for (i, weight) in weights.iter().enumerate() {
        sum += weight;
        let kg = range.first() + i as u32;
        // Close a part once it holds its share of the weight seen so far.
        let done = parts.len() + 1;
        if done < count && sum * count as u64 >= total * done as u64 {
            parts.push(KeyGroupRange::new(first, kg));
            first = kg + 1;
        }
    }
    parts.push(KeyGroupRange::new(first, range.last()));
    parts.retain(|r| !r.is_empty());
    parts
}

/// Runs `f` on every item, each on a scoped thread of its own (on the caller's thread when
/// there is one item), and returns the results in order.
///
/// # Errors
/// The first error of `f`; [`cornerstone_backend_api::ErrorKind::Internal`] naming `what`
/// when a thread panicked.
pub(crate) fn run_each<T: Send, R: Send>(
    items: Vec<T>,
    what: &str,
    f: impl Fn(T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    if items.len() <= 1 {
        return items.into_iter().map(f).collect();
    }
    let f = &f;
    std::thread::scope(|s| {
        let threads: Vec<_> = items
            .into_iter()
            .map(|item| s.spawn(move || f(item)))
            .collect();
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| Err(Error::internal(format!("a {what} thread panicked"))))
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parts_are_contiguous_of_about_equal_weight() {
        let range = KeyGroupRange::new(10, 17);
        assert_eq!(
            split(range, &[2; 8], 4, 8),
            [(10, 11), (12, 13), (14, 15), (16, 17)].map(|(a, b)| KeyGroupRange::new(a, b))
        );
        assert_eq!(
            split(range, &[2; 8], 4, 2),
            [KeyGroupRange::new(10, 13), KeyGroupRange::new(14, 17)]
        );
        assert_eq!(
            split(range, &[2; 8], 9, 8),
            [range],
            "below twice the minimum"
        );
        assert_eq!(split(range, &[0; 8], 4, 8), [range]);
    }

    #[test]
    fn results_come_in_order_and_errors_and_panics_are_reported() {
        let squares = run_each((0..5u64).collect(), "test", |i| Ok(i * i)).unwrap();
        assert_eq!(squares, [0, 1, 4, 9, 16]);
        let e = run_each(vec![1, 2], "test", |i| {
            if i == 2 {
                Err(Error::invalid_input("two"))
            } else {
                Ok(i)
            }
        })
        .unwrap_err();
        assert!(e.to_string().contains("two"), "{e}");
        let e = run_each(vec![1, 2], "test", |i| {
            assert!(i != 2, "a deliberate panic");
            Ok(i)
        })
        .unwrap_err();
        assert!(e.to_string().contains("a test thread panicked"), "{e}");
    }
}
