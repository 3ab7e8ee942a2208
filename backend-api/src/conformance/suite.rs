//! The [`conformance_suite!`](crate::conformance_suite) macro: the list of every case, run
//! as one `#[test]` each by the backend crates.

/// Runs the conformance suite against a harness expression: one `#[test]` per case. The
/// expression is evaluated once per test.
///
/// `conformance_suite!(@each harness; case_a, case_b)` runs only the listed cases.
#[macro_export]
macro_rules! conformance_suite {
    ($h:expr) => {
        $crate::conformance_suite!(@each $h;
            // value
            value_get_update_clear,
            value_transform,
            value_namespaces_isolate,
            value_window_namespaces_and_state_keys,
            value_struct_values,
            // list
            list_get_add_add_all_update_clear,
            list_for_each_in_insertion_order,
            list_empty_update_clears,
            list_merge_namespaces,
            list_merge_every_arrangement,
            list_api_with_empty_lists,
            // map
            map_get_put_remove_contains,
            map_put_all_entries_keys_values,
            map_is_empty_clear_for_each,
            map_removing_last_entry_removes_key,
            map_namespaces_isolate,
            map_modified_while_iterating,
            map_arbitrary_access_while_iterating,
            // reducing and aggregating
            reducing_add_get_clear,
            reducing_merge_namespaces,
            aggregating_average,
            aggregating_merge_namespaces,
            reducing_merge_every_arrangement,
            // iteration and clear
            state_keys_iterates_every_key_once,
            clear_of_one_key_keeps_others,
            state_changed_while_walking_keys,
            state_keys_per_namespace_every_kind,
            absent_and_cleared_state_across_restore,
            // registration
            same_name_returns_same_data,
            same_name_other_value_type_is_rejected,
            same_name_other_kind_is_rejected,
            same_name_other_namespace_or_ttl_is_rejected,
            empty_state_name_is_rejected,
            invalid_params_are_rejected,
            registered_states_lists_states_by_name,
            // key groups
            foreign_key_is_rejected,
            backend_reports_its_range,
            keys_in_different_key_groups_do_not_interfere,
            // ttl
            ttl_on_create_and_write,
            ttl_on_read_and_write_refreshes_on_read,
            ttl_never_return_expired,
            ttl_return_expired_if_not_cleaned_up,
            ttl_expires_exactly_at_ttl,
            ttl_list_elements_expire_individually,
            ttl_list_return_expired_keeps_order,
            ttl_map_entries_expire_individually,
            ttl_reducing_restarts_after_expiry,
            ttl_cleanup_full_snapshot_drops_expired,
            ttl_expired_kept_in_snapshot_without_cleanup,
            ttl_timestamps_survive_restore,
            ttl_incremental_cleanup_removes_expired_values,
            ttl_incremental_cleanup_lists_and_maps,
            ttl_list_merge_keeps_element_timestamps,
            ttl_list_merge_never_resurrects_expired,
            ttl_reducing_merge_keeps_timestamps,
            ttl_reducing_merge_never_resurrects_expired,
            ttl_exact_expiration_every_kind_across_restores,
            ttl_relaxed_expiration_every_kind_across_restores,
            ttl_expiration_timestamp_overflow,
            ttl_snapshot_then_later_writes_restore,
            ttl_incremental_cleanup_leaves_pending_snapshot_alone,
            // snapshots
            snapshot_roundtrip_value,
            snapshot_roundtrip_list,
            snapshot_roundtrip_map,
            snapshot_roundtrip_reducing_and_aggregating,
            snapshot_roundtrip_string_keys_struct_values,
            snapshot_roundtrip_many_keys,
            snapshot_empty_backend,
            snapshot_keeps_registered_empty_state,
            snapshot_excludes_later_updates,
            snapshot_excludes_later_deletes,
            snapshot_excludes_later_list_adds,
            snapshot_excludes_later_map_puts,
            checkpoint_series_restores_each_state,
            two_snapshots_outstanding,
            late_confirmation_references_no_file_the_newer_checkpoint_dropped,
            async_phase_on_another_thread,
            snapshot_while_another_is_blocked_in_io,
            ten_async_phases_at_once,
            failed_stream_create_leaves_backend_working,
            failed_stream_write_leaves_backend_working,
            unregistered_restored_state_survives_second_cycle,
            // compatibility
            restore_with_other_value_type_fails,
            restore_with_other_kind_fails,
            restore_with_ttl_toggled_fails,
            restore_with_other_key_type_fails,
            // type identities
            typed_states_roundtrip,
            restore_snapshot_with_rust_type_names,
            savepoint_is_canonical,
            renamed_type_restores_and_new_version_is_named,
            migration_on_restore,
            migration_without_a_path_is_named,
            // upgrades
            restore_renames_a_state,
            restore_drops_a_state,
            restore_state_mapping_mistakes_are_refused,
            // corruption
            corrupted_snapshot_byte_is_detected,
            truncated_snapshot_is_detected,
            // rescale
            rescale_1_to_3,
            rescale_3_to_1,
            rescale_4_to_6,
            rescale_max_parallelism_7,
            rescale_max_parallelism_1000,
            rescale_twice_without_registering,
            rescale_state_per_key_group_4_to_2,
            rescale_state_per_key_group_2_to_4,
            rescale_state_per_key_group_15_to_77,
            rescale_state_per_key_group_77_to_15,
            // operator state
            operator_split_2_to_3,
            operator_split_3_to_2,
            operator_split_same_parallelism_keeps_assignment,
            operator_union_every_subtask_gets_all,
            operator_broadcast_same_map_everywhere,
            operator_restore_with_other_mode_fails,
            operator_unregistered_state_survives,
            operator_register_states,
            operator_snapshot_isolation,
            operator_empty_snapshot,
            operator_broadcast_remove_and_clear_cycles,
            operator_union_partly_registered,
            // timers
            timers_fire_in_order,
            timers_extreme_timestamps,
            timers_deduplicate,
            timers_delete,
            timers_register_while_firing,
            timers_callback_error_stops_firing,
            timers_processing_time_from_clock,
            timers_named_services,
            timers_foreign_key_is_rejected,
            timers_snapshot_roundtrip,
            timers_snapshot_isolation,
            timers_unregistered_survive_a_second_cycle,
            timers_rescale_1_to_3,
            timers_rescale_4_to_2,
            timers_rescale_max_parallelism_1000,
            timers_restore_with_keyed_state,
            timers_corrupt_timestamp_is_refused,
            timers_many_in_one_key_group,
            timers_model_check,
            // model
            model_check
        );
    };
    (@each $h:expr; $($case:ident),+ $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::conformance::$case(&$h);
            }
        )+
    };
}
