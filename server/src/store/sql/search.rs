//! A search's page and its words, as `store::search` describes them: how a page is read
//! (`Plan`), and its words as the word index matches them (PostgreSQL reads them from its
//! vocabulary, `search_words`, which migration 14's trigger keeps).

use app::api::ListQuery;

use super::jobs::{Drive, push_cursor, push_filter};
use super::rows::{JOB_FROM, JOB_SUMMARY_COLUMNS, first};
use crate::store::engine::{Engine, Query, SearchScope, WordMatch};
use crate::store::search::{
    MOST_WORDS_BEGUN, WordsBegun, filters_in_word_index, prefix_end, words_counted_ahead,
};
use crate::store::{SEARCH_COUNT_CAP, SEARCH_WINDOW, StoreResult, Visibility};

/// A search's words: as the word index matches them, and as the vocabulary read them.
pub(super) struct SearchWords {
    pub matching: WordMatch,
    /// Each search word's words in the vocabulary (PostgreSQL; empty on SQLite).
    pub begun: Vec<WordsBegun>,
}

/// The words of a search as the word index matches them; `None` without words, or where no job
/// carries a word beginning with one of them (the search then matches by id, key or batch).
/// PostgreSQL reads each word's words from the vocabulary: a few exact entries of the GIN
/// index cost a fraction of a prefix, which builds a bitmap of every match.
pub(super) async fn word_match<E: Engine>(
    engine: &E,
    words: &[String],
) -> StoreResult<Option<SearchWords>> {
    if words.is_empty() {
        return Ok(None);
    }
    if !E::DIALECT.keeps_vocabulary() {
        return Ok(Some(SearchWords {
            matching: WordMatch::prefixes(words),
            begun: Vec::new(),
        }));
    }
    let mut query = Query::default();
    for (i, word) in words.iter().enumerate() {
        if i > 0 {
            query.push(" UNION ALL ");
        }
        query
            .push(&format!(
                "(SELECT CAST({i} AS BIGINT), word FROM search_words WHERE word >= "
            ))
            .bind(word.as_str());
        // The words it begins are one range of the key; past the last character, the rest.
        match prefix_end(word) {
            Some(end) => query.push(" AND word < ").bind(end),
            None => query
                .push(" AND starts_with(word, ")
                .bind(word.as_str())
                .push(")"),
        };
        query.push(&format!(" ORDER BY word LIMIT {})", MOST_WORDS_BEGUN + 1));
    }
    let mut found: Vec<Vec<String>> = vec![Vec::new(); words.len()];
    for (i, begun) in engine.read::<(i64, String)>(query).await? {
        if let Some(found) = usize::try_from(i).ok().and_then(|i| found.get_mut(i)) {
            found.push(begun);
        }
    }
    let mut begun = Vec::with_capacity(words.len());
    for (word, found) in words.iter().zip(found) {
        match WordsBegun::of(word, found) {
            Some(words) => begun.push(words),
            None => return Ok(None),
        }
    }
    Ok(Some(SearchWords {
        matching: WordMatch::tsquery(&begun),
        begun,
    }))
}

/// Whether the search's count is past the cap by the counts kept of its words
/// (`search_word_jobs`, migration 15), so its matches need not be counted.
pub(super) async fn known_capped<E: Engine>(
    engine: &E,
    visibility: &Visibility,
    filter: &ListQuery,
    words: &SearchWords,
) -> StoreResult<bool> {
    let Some(begun) = words_counted_ahead(filter, &words.begun) else {
        return Ok(false);
    };
    let mut query = Query::new(
        "SELECT COUNT(*) FROM (SELECT 1 FROM search_word_jobs WHERE word IN ",
        [],
    );
    query.list(begun.iter().map(String::as_str));
    if let Visibility::Owner(owner_id) = visibility {
        query.push(" AND owner_id = ").bind(owner_id.as_str());
    }
    // Each owner's count stops one past the cap: their sum past the cap is a capped count.
    query
        .push(" GROUP BY word HAVING SUM(jobs) > ")
        .bind(SEARCH_COUNT_CAP)
        .push(") known");
    Ok(first(engine.read::<(i64,)>(query).await?).is_some_and(|found| found > 0))
}

/// A search's words among the jobs of the type asked for, which the word index narrows them
/// to (`WordMatch::typed`), so a common word's jobs of other types are never read; the words
/// as they are without a type.
pub(super) fn typed_words(filter: &ListQuery, words: Option<&WordMatch>) -> Option<WordMatch> {
    Some(words?.typed(filter.job_type?))
}

/// The words that count a search's matches from SQLite's word index alone, when its filters
/// are at most the type and whose jobs it lists, both held beside the words: `words` (typed
/// already) among the owner's jobs, or as they are for every owner's. PostgreSQL's count reads
/// the jobs whatever this says (`Dialect::count_search`).
pub(super) fn counted_words<E: Engine>(
    visibility: &Visibility,
    filter: &ListQuery,
    words: Option<&WordMatch>,
) -> Option<WordMatch> {
    let words = words.filter(|_| filters_in_word_index(filter))?;
    match visibility {
        Visibility::Owner(owner_id) => E::DIALECT.owned_words(words, owner_id),
        Visibility::All => filter.job_type.is_some().then(|| words.clone()),
    }
}

/// How a page of the list is read (`store::search`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Plan {
    /// Newest first along an index, filters tested on the way: no words to search.
    Ordered,
    /// The search tested on the newest `SEARCH_WINDOW` jobs that pass the other filters: the
    /// page, when it finds a full one (a common word), since every older match comes later.
    Recent,
    /// Every match found by the word index, then sorted: a rare word. Its first pages count
    /// the matches too, so the word index is not read again for the count.
    Sorted,
}

/// The statement that reads a page of jobs by `plan`.
pub(super) fn page_query<'a, E: Engine>(
    visibility: &'a Visibility,
    filter: &'a ListQuery,
    words: Option<&'a WordMatch>,
    plan: Plan,
) -> Query<'a> {
    let search = filter.search.as_deref();
    let mut query = match plan {
        Plan::Ordered => {
            let mut query = Query::new(
                format!("SELECT {JOB_SUMMARY_COLUMNS}{JOB_FROM} WHERE 1 = 1"),
                [],
            );
            // A search here has no words: its few matches by id, key or batch drive.
            let drive = match search {
                Some(_) => Drive::Matches,
                None => Drive::Filters,
            };
            push_filter::<E>(&mut query, visibility, filter, drive);
            if let Some(text) = search {
                E::DIALECT.push_search(&mut query, text, words, SearchScope::Everywhere);
            }
            push_cursor(&mut query, filter);
            query
        }
        Plan::Recent => {
            let (window, from) = E::DIALECT.recent_window();
            let mut query = Query::new(window, []);
            push_filter::<E>(&mut query, visibility, filter, Drive::Filters);
            push_cursor(&mut query, filter);
            query
                .push(" ORDER BY j.created_at DESC, j.id DESC LIMIT ")
                .bind(SEARCH_WINDOW)
                .push(&format!(") SELECT {JOB_SUMMARY_COLUMNS}{from} WHERE 1 = 1"));
            if let Some(text) = search {
                E::DIALECT.push_search(&mut query, text, words, SearchScope::Recent);
            }
            query
        }
        Plan::Sorted => {
            let mut query = Query::new(
                "WITH matching AS MATERIALIZED (SELECT j.id FROM jobs j WHERE 1 = 1",
                [],
            );
            push_filter::<E>(&mut query, visibility, filter, Drive::Matches);
            if let Some(text) = search {
                E::DIALECT.push_search(&mut query, text, words, SearchScope::Everywhere);
            }
            push_cursor(&mut query, filter);
            // Past a cursor `matching` holds only the older matches: no count of all of them.
            let matched = match filter.cursor {
                None => "(SELECT COUNT(*) FROM matching)",
                Some(_) => "CAST(NULL AS BIGINT)",
            };
            query.push(&format!(
                ") SELECT {JOB_SUMMARY_COLUMNS}, {matched} AS matched{JOB_FROM} \
                 WHERE j.id IN (SELECT id FROM matching)"
            ));
            query
        }
    };
    query
        .push(" ORDER BY j.created_at DESC, j.id DESC LIMIT ")
        .bind(filter.limit)
        .push(" OFFSET ")
        .bind(filter.offset);
    query
}
