//! Text forms of a `Comparison`: terminal table, Markdown (pull-request comment), JUnit XML.
//! Pure: each returns a `String`; the CLI writes it.
