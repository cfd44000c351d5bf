"""The scenario report's replay of the registry's committee list from its ``Listed`` events (issue 16): the chain
forgets an epoch's list two epochs later, the report needs it for every epoch of the run (credits, duties,
committees). No chain: the events are given as the registry emits them, in chain order."""

from alignment_node.devnet.report import ListHistory


def listed(token_id: int, from_epoch: int, on: bool = True) -> dict:
    return {"tokenId": token_id, "listed": on, "fromEpoch": from_epoch}


def test_the_list_is_replayed_as_the_registry_keeps_it():
    events = [listed(1, 5), listed(2, 5), listed(3, 5),
              listed(1, 6, False),  # the last license takes the hole: [3, 2]
              listed(4, 6),
              listed(5, 7), listed(5, 7, False),  # listed and unlisted within one epoch: never on a list
              listed(4, 8, False),  # the last one leaves: no swap
              listed(1, 8)]  # back again, at the end
    lists = ListHistory(events).lists(range(3, 10))
    assert lists == {3: [], 4: [], 5: [1, 2, 3], 6: [3, 2, 4], 7: [3, 2, 4], 8: [3, 2, 1], 9: [3, 2, 1]}
    # epochs asked out of order or twice: the same lists
    assert ListHistory(events).lists([8, 6, 6]) == {6: [3, 2, 4], 8: [3, 2, 1]}


def test_a_list_with_one_license_leaving_and_another_joining_keeps_positions_stable():
    events = [listed(i, 2) for i in range(1, 6)] + [listed(2, 3, False), listed(6, 3), listed(5, 4, False)]
    lists = ListHistory(events).lists([2, 3, 4])
    assert lists[2] == [1, 2, 3, 4, 5]
    assert lists[3] == [1, 5, 3, 4, 6]
    assert lists[4] == [1, 6, 3, 4]  # 5 left its place to the last one, 6


def test_the_outcome_summary_of_devnet_up_counts_honest_and_faulty_targets_apart():
    from alignment_node.devnet.scenarios import outcome_summary

    def target(fault, trap, outcomes, reasons=None):
        return {"fault": fault, "trap": trap, "outcomes": outcomes, "inconclusive_reasons": reasons or {}}

    report = {"targets": [
        target(None, False, {"2": "OK", "3": "OK", "4": "INCONCLUSIVE"}, {"4": "split"}),
        target(None, False, {"2": "OK", "3": "OK", "4": "OK"}),
        target(None, True, {"2": "FAULT"}),  # a trap is not an honest target, whatever its fault field
        target("down", False, {"2": "UNREACHABLE", "3": "INCONCLUSIVE"}, {"3": "missing-reveals"}),
    ]}
    s = outcome_summary(report)
    assert s["honest"] == {"outcomes": 6, "counts": {"INCONCLUSIVE": 1, "OK": 5},
                           "inconclusive_reasons": {"split": 1}, "inconclusive_pct": 16.67}
    assert s["faulty"]["outcomes"] == 3 and s["faulty"]["counts"] == {"FAULT": 1, "INCONCLUSIVE": 1, "UNREACHABLE": 1}
    assert s["faulty"]["inconclusive_reasons"] == {"missing-reveals": 1}
    assert outcome_summary({"targets": []})["honest"]["inconclusive_pct"] is None
