"""Which registers a routed design fails to reach in time, by name.

nextpnr prints one critical path. With ``--detailed-timing-report`` its ``--report`` JSON also
holds, for every net, the arrival time at each sink (from the launching clock edge, the
driver's clock-to-out and logic included, setup and the capturing clock's own delay not: on
the iCE40 a register can be listed a fraction of a nanosecond late that nextpnr's fmax still
passes). :func:`slow_registers` joins those sinks
with the register names of yosys's netlist and groups them, numbers replaced by ``#``
(``core.pipeline.layer#.n#_t#_#``), so that a build's report says which part of the design to
cut next, and how many of its registers are late.
"""

import re
from collections import defaultdict

__all__ = ["register_names", "slow_registers", "failing_periods"]


def register_names(netlist):
    """``{cell name: name of the net on its Q}`` for the flip-flops of a yosys JSON netlist
    (the ``top`` module, flattened), a public name preferred to a generated one.

    nextpnr-ecp5 keeps a flip-flop's cell name. nextpnr-ice40 packs it into a logic cell named
    ``<flip-flop>_DFFLC``, or ``<LUT>_LC`` when the LUT that alone drives its D comes along:
    those names map to the register too.
    """
    module = netlist["modules"]["top"]
    bit_name = {}
    for name, net in module["netnames"].items():
        hidden = bool(net.get("hide_name", 0))
        for k, bit in enumerate(net["bits"]):
            if not isinstance(bit, int):
                continue
            if bit not in bit_name or (bit_name[bit][1] and not hidden):
                bit_name[bit] = (f"{name}[{k}]" if len(net["bits"]) > 1 else name, hidden)
    driver, readers = {}, defaultdict(int)
    for cell, c in module["cells"].items():
        directions = c.get("port_directions", {})
        for port, bits in c.get("connections", {}).items():
            for bit in bits:
                if directions.get(port) == "output":
                    driver[bit] = cell
                else:
                    readers[bit] += 1
    names = {}
    for cell, c in module["cells"].items():
        q = c.get("connections", {}).get("Q")
        if not q or q[0] not in bit_name:
            continue
        name = bit_name[q[0]][0]
        names[cell] = names[f"{cell}_DFFLC"] = name
        d = c["connections"].get("D")
        if d and d[0] in driver and readers[d[0]] == 1:
            names[f"{driver[d[0]]}_LC"] = name
    return names


def _pattern(name):
    return re.sub(r"\d+", "#", name)


def _clock(event):
    return event.split(" ", 1)[-1] if event else None


def slow_registers(report, registers, period_ns, top=12):
    """Register inputs whose data arrive later than their clock's period, grouped by name
    pattern.

    ``report`` is nextpnr's ``--report`` JSON (with ``--detailed-timing-report``), ``registers``
    what :func:`register_names` returns, ``period_ns`` the period, or ``{clock net: period}``
    (a clock left out is not checked). Returns at most ``top`` groups, latest first:
    ``{"register", "port", "driver", "endpoints", "worst_ns"}`` (``driver`` is the pattern of
    the net that arrives late). Sinks that are not registers (output pins) are left out, and
    so are paths from one clock to another: nextpnr times those only between related clocks
    (one driver), which a board top's PLL output and its oscillator are not. ``clock`` in a
    row is the capturing clock's net (None where the report names none).
    """
    groups = defaultdict(list)
    for net in report.get("detailed_net_timings", []):
        launch = _clock(net.get("event"))
        for sink in net.get("endpoints", []):
            capture = _clock(sink.get("event"))
            if launch and capture and launch != capture:
                continue
            period = period_ns.get(capture) if isinstance(period_ns, dict) else period_ns
            arrival = max(sink["delay"])
            if period is None or arrival <= period or sink["cell"] not in registers:
                continue
            driver = registers.get(net["driver"], net["net"])
            key = (_pattern(registers[sink["cell"]]), sink["port"], _pattern(driver), capture)
            groups[key].append(arrival)
    rows = [{"register": reg, "port": port, "driver": drv, "clock": clock,
             "endpoints": len(times), "worst_ns": round(max(times), 2)}
            for (reg, port, drv, clock), times in groups.items()]
    rows.sort(key=lambda r: (-r["worst_ns"], r["register"]))
    return rows[:top]


def failing_periods(fmax):
    """``{clock net: period ns}`` of the clocks that miss their constraint, from
    :func:`~clockprop.boards.build.parse_nextpnr`'s ``fmax``: the only domains whose late
    registers a report lists, so that it never calls late what the summary calls met (an
    arrival time leaves out the capturing clock's delay, which nextpnr's fmax credits)."""
    return {k: 1e3 / v["constraint_mhz"] for k, v in fmax.items()
            if v.get("constraint_mhz") and (v.get("achieved_mhz") or 0) < v["constraint_mhz"]}
