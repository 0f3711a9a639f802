//! The expectations Sluice knows, with the arguments Great Expectations accepts for each
//! (from GE 1.x's argument schemas). A suite naming anything else is reported, never ignored.

/// How an expectation looks at the data, which decides how it is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The table as a whole: row and column counts, column names.
    Table,
    /// Each value of one column on its own; `mostly` applies, nulls are skipped.
    ColumnMap,
    /// One statistic of one column (min, mean, distinct values, …).
    ColumnAggregate,
    /// A pair of columns, row by row.
    ColumnPairMap,
    /// Several columns, row by row.
    MulticolumnMap,
}

#[derive(Debug)]
pub struct Expectation {
    pub name: &'static str,
    pub class: Class,
    pub required: &'static [&'static str],
    pub optional: &'static [&'static str],
}

/// Arguments every expectation accepts (GE's standard arguments).
pub const STANDARD: &[&str] = &[
    "result_format",
    "catch_exceptions",
    "meta",
    "notes",
    "id",
    "description",
];

const MAP: &[&str] = &["mostly", "row_condition", "condition_parser"];
const BETWEEN: &[&str] = &[
    "min_value",
    "max_value",
    "strict_min",
    "strict_max",
    "row_condition",
    "condition_parser",
];
const MAP_BETWEEN: &[&str] = &[
    "mostly",
    "min_value",
    "max_value",
    "strict_min",
    "strict_max",
    "row_condition",
    "condition_parser",
];
const ROWS: &[&str] = &[
    "mostly",
    "row_condition",
    "condition_parser",
    "ignore_row_if",
];
const SET: &[&str] = &["row_condition", "condition_parser"];

macro_rules! e {
    ($name:literal, $class:ident, [$($r:literal),*], $opt:expr) => {
        Expectation { name: $name, class: Class::$class, required: &[$($r),*], optional: $opt }
    };
}

pub const EXPECTATIONS: &[Expectation] = &[
    // Table.
    e!(
        "expect_table_row_count_to_be_between",
        Table,
        [],
        &[
            "min_value",
            "max_value",
            "strict_min",
            "strict_max",
            "row_condition",
            "condition_parser"
        ]
    ),
    e!(
        "expect_table_row_count_to_equal",
        Table,
        ["value"],
        &["row_condition", "condition_parser"]
    ),
    e!("expect_table_column_count_to_equal", Table, ["value"], &[]),
    e!(
        "expect_table_column_count_to_be_between",
        Table,
        [],
        &["min_value", "max_value", "strict_min", "strict_max"]
    ),
    e!(
        "expect_table_columns_to_match_ordered_list",
        Table,
        ["column_list"],
        &[]
    ),
    e!(
        "expect_table_columns_to_match_set",
        Table,
        ["column_set"],
        &["exact_match"]
    ),
    e!(
        "expect_column_to_exist",
        Table,
        ["column"],
        &["column_index"]
    ),
    // Row-wise, one column.
    e!(
        "expect_column_values_to_not_be_null",
        ColumnMap,
        ["column"],
        MAP
    ),
    e!(
        "expect_column_values_to_be_null",
        ColumnMap,
        ["column"],
        MAP
    ),
    e!(
        "expect_column_values_to_be_unique",
        ColumnMap,
        ["column"],
        MAP
    ),
    e!(
        "expect_column_values_to_be_between",
        ColumnMap,
        ["column"],
        MAP_BETWEEN
    ),
    e!(
        "expect_column_values_to_be_in_set",
        ColumnMap,
        ["column", "value_set"],
        &[
            "mostly",
            "row_condition",
            "condition_parser",
            "parse_strings_as_datetimes"
        ]
    ),
    e!(
        "expect_column_values_to_not_be_in_set",
        ColumnMap,
        ["column", "value_set"],
        MAP
    ),
    e!(
        "expect_column_values_to_match_regex",
        ColumnMap,
        ["column", "regex"],
        MAP
    ),
    e!(
        "expect_column_values_to_not_match_regex",
        ColumnMap,
        ["column", "regex"],
        MAP
    ),
    e!(
        "expect_column_values_to_match_regex_list",
        ColumnMap,
        ["column", "regex_list"],
        &["match_on", "mostly", "row_condition", "condition_parser"]
    ),
    e!(
        "expect_column_values_to_not_match_regex_list",
        ColumnMap,
        ["column", "regex_list"],
        MAP
    ),
    e!(
        "expect_column_value_lengths_to_be_between",
        ColumnMap,
        ["column"],
        MAP_BETWEEN
    ),
    e!(
        "expect_column_value_lengths_to_equal",
        ColumnMap,
        ["column", "value"],
        MAP
    ),
    e!(
        "expect_column_values_to_be_of_type",
        ColumnMap,
        ["column", "type_"],
        MAP
    ),
    e!(
        "expect_column_values_to_be_in_type_list",
        ColumnMap,
        ["column", "type_list"],
        MAP
    ),
    e!(
        "expect_column_values_to_match_strftime_format",
        ColumnMap,
        ["column", "strftime_format"],
        MAP
    ),
    e!(
        "expect_column_values_to_be_increasing",
        ColumnMap,
        ["column"],
        &["strictly", "mostly", "row_condition", "condition_parser"]
    ),
    e!(
        "expect_column_values_to_be_decreasing",
        ColumnMap,
        ["column"],
        &["strictly", "mostly", "row_condition", "condition_parser"]
    ),
    e!(
        "expect_column_values_to_be_json_parseable",
        ColumnMap,
        ["column"],
        MAP
    ),
    e!(
        "expect_column_values_to_be_dateutil_parseable",
        ColumnMap,
        ["column"],
        MAP
    ),
    e!(
        "expect_column_value_z_scores_to_be_less_than",
        ColumnMap,
        ["column", "threshold"],
        &[
            "double_sided",
            "mostly",
            "row_condition",
            "condition_parser"
        ]
    ),
    // Aggregates.
    e!(
        "expect_column_min_to_be_between",
        ColumnAggregate,
        ["column"],
        BETWEEN
    ),
    e!(
        "expect_column_max_to_be_between",
        ColumnAggregate,
        ["column"],
        BETWEEN
    ),
    e!(
        "expect_column_mean_to_be_between",
        ColumnAggregate,
        ["column"],
        BETWEEN
    ),
    e!(
        "expect_column_median_to_be_between",
        ColumnAggregate,
        ["column"],
        BETWEEN
    ),
    e!(
        "expect_column_sum_to_be_between",
        ColumnAggregate,
        ["column"],
        BETWEEN
    ),
    e!(
        "expect_column_stdev_to_be_between",
        ColumnAggregate,
        ["column"],
        BETWEEN
    ),
    e!(
        "expect_column_quantile_values_to_be_between",
        ColumnAggregate,
        ["column", "quantile_ranges"],
        &["allow_relative_error", "row_condition", "condition_parser"]
    ),
    e!(
        "expect_column_unique_value_count_to_be_between",
        ColumnAggregate,
        ["column"],
        BETWEEN
    ),
    e!(
        "expect_column_proportion_of_unique_values_to_be_between",
        ColumnAggregate,
        ["column"],
        BETWEEN
    ),
    e!(
        "expect_column_most_common_value_to_be_in_set",
        ColumnAggregate,
        ["column", "value_set"],
        &["ties_okay", "row_condition", "condition_parser"]
    ),
    e!(
        "expect_column_distinct_values_to_be_in_set",
        ColumnAggregate,
        ["column", "value_set"],
        SET
    ),
    e!(
        "expect_column_distinct_values_to_contain_set",
        ColumnAggregate,
        ["column", "value_set"],
        SET
    ),
    e!(
        "expect_column_distinct_values_to_equal_set",
        ColumnAggregate,
        ["column", "value_set"],
        SET
    ),
    // Several columns.
    e!(
        "expect_column_pair_values_to_be_equal",
        ColumnPairMap,
        ["column_A", "column_B"],
        ROWS
    ),
    e!(
        "expect_column_pair_values_a_to_be_greater_than_b",
        ColumnPairMap,
        ["column_A", "column_B"],
        &[
            "or_equal",
            "mostly",
            "row_condition",
            "condition_parser",
            "ignore_row_if"
        ]
    ),
    e!(
        "expect_column_pair_values_to_be_in_set",
        ColumnPairMap,
        ["column_A", "column_B", "value_pairs_set"],
        ROWS
    ),
    e!(
        "expect_compound_columns_to_be_unique",
        MulticolumnMap,
        ["column_list"],
        ROWS
    ),
    e!(
        "expect_select_column_values_to_be_unique_within_record",
        MulticolumnMap,
        ["column_list"],
        ROWS
    ),
    e!(
        "expect_multicolumn_sum_to_equal",
        MulticolumnMap,
        ["column_list", "sum_total"],
        ROWS
    ),
];

/// Names GE used before renaming them; suites written for older versions still load.
pub const RENAMED: &[(&str, &str)] = &[
    (
        "expect_column_pair_values_A_to_be_greater_than_B",
        "expect_column_pair_values_a_to_be_greater_than_b",
    ),
    (
        "expect_multicolumn_values_to_be_unique",
        "expect_select_column_values_to_be_unique_within_record",
    ),
    (
        "expect_column_ntiles_to_be_between",
        "expect_column_quantile_values_to_be_between",
    ),
];

/// The expectation of this name (snake_case, or GE 1.x's CamelCase class name).
pub fn find(name: &str) -> Option<&'static Expectation> {
    let snake = snake_case(name);
    let name = RENAMED
        .iter()
        .find(|(old, _)| *old == snake || *old == name)
        .map_or(snake.as_str(), |(_, new)| new);
    EXPECTATIONS.iter().find(|e| e.name == name)
}

/// `ExpectColumnValuesToBeBetween` → `expect_column_values_to_be_between`; snake_case is kept.
pub fn snake_case(name: &str) -> String {
    if name.contains('_') || !name.starts_with(|c: char| c.is_ascii_uppercase()) {
        return name.to_string();
    }
    let mut out = String::with_capacity(name.len() + 8);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_in_every_spelling() {
        assert_eq!(
            find("ExpectColumnValuesToBeBetween").unwrap().name,
            "expect_column_values_to_be_between"
        );
        assert_eq!(
            find("expect_column_values_to_be_between").unwrap().class,
            Class::ColumnMap
        );
        assert_eq!(
            find("ExpectColumnPairValuesAToBeGreaterThanB")
                .unwrap()
                .name,
            "expect_column_pair_values_a_to_be_greater_than_b"
        );
        assert_eq!(
            find("expect_multicolumn_values_to_be_unique").unwrap().name,
            "expect_select_column_values_to_be_unique_within_record"
        );
        assert!(find("expect_column_values_to_be_purple").is_none());
    }

    #[test]
    fn names_are_unique_and_arguments_do_not_overlap() {
        for (i, e) in EXPECTATIONS.iter().enumerate() {
            assert!(
                EXPECTATIONS[i + 1..].iter().all(|o| o.name != e.name),
                "{} twice",
                e.name
            );
            for r in e.required {
                assert!(
                    !e.optional.contains(r) && !STANDARD.contains(r),
                    "{}: {r}",
                    e.name
                );
            }
        }
    }
}
