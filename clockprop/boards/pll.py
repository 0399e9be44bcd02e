"""PLL settings for iCE40 (SB_PLL40) and ECP5 (EHXPLLL), and the clock domain they drive.

The searches mirror ``icepll`` and ``ecppll`` from the open toolchains: every legal divider
set is tried and the one closest to the requested frequency wins.
"""

from dataclasses import dataclass

from amaranth.hdl import ClockDomain, Instance, Signal
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

from ..core.errors import ClockpropError

__all__ = ["PLLConfig", "ice40_pll", "ecp5_pll", "clock_domain"]


@dataclass(frozen=True)
class PLLConfig:
    family: str
    f_in: float
    f_out: float            # what the dividers actually give
    params: dict


def ice40_pll(f_in, f_out):
    """SB_PLL40 SIMPLE-feedback dividers: f_out = f_in (DIVF+1) / ((DIVR+1) 2**DIVQ)."""
    best = None
    for divr in range(16):
        f_pfd = f_in / (divr + 1)
        if not 10e6 <= f_pfd <= 133e6:
            continue
        for divf in range(128):
            f_vco = f_pfd * (divf + 1)
            if not 533e6 <= f_vco <= 1066e6:
                continue
            for divq in range(1, 7):
                f = f_vco / (1 << divq)
                if best is None or abs(f - f_out) < abs(best[0] - f_out):
                    best = (f, divr, divf, divq, f_pfd)
    if best is None or abs(best[0] - f_out) > 0.01 * f_out:
        raise ClockpropError(f"no iCE40 PLL setting makes {f_out / 1e6:g} MHz from "
                             f"{f_in / 1e6:g} MHz; pick another --freq (16..275 MHz)")
    f, divr, divf, divq, f_pfd = best
    filter_range = next(k for k, top in enumerate((17e6, 26e6, 44e6, 66e6, 101e6, 1e12), 1)
                        if f_pfd < top)
    return PLLConfig("ice40", f_in, f, {"DIVR": divr, "DIVF": divf, "DIVQ": divq,
                                        "FILTER_RANGE": filter_range})


def ecp5_pll(f_in, f_out):
    """EHXPLLL dividers with CLKOP feedback: f_out = f_in CLKFB_DIV / CLKI_DIV."""
    best = None
    for i_div in range(1, 129):
        f_pfd = f_in / i_div
        if not 3.125e6 <= f_pfd <= 400e6:
            continue
        for fb_div in range(1, 81):
            f = f_pfd * fb_div
            for op_div in range(1, 129):
                f_vco = f * op_div
                if 400e6 <= f_vco <= 800e6:
                    if best is None or abs(f - f_out) < abs(best[0] - f_out):
                        best = (f, i_div, fb_div, op_div)
                    break
    if best is None or abs(best[0] - f_out) > 0.01 * f_out:
        raise ClockpropError(f"no ECP5 PLL setting makes {f_out / 1e6:g} MHz from "
                             f"{f_in / 1e6:g} MHz; pick another --freq (4..400 MHz)")
    f, i_div, fb_div, op_div = best
    return PLLConfig("ecp5", f_in, f, {"CLKI_DIV": i_div, "CLKFB_DIV": fb_div,
                                       "CLKOP_DIV": op_div})


def clock_domain(m, board, platform, f_out, *, link_domain=None):
    """Create the ``sync`` domain at ``f_out`` on ``board`` (PLL unless it equals the input
    clock), held in reset until the PLL locks. Returns the achieved frequency.

    ``link_domain`` names a second domain on the board's own clock (its oscillator, before
    the PLL), reset with ``sync``: ``board.clock_hz``. It is only made when a PLL makes
    ``sync`` from that clock's pin (not on an iCE40 board whose PLL takes the pad itself).
    """
    m.domains.sync = cd = ClockDomain("sync")
    locked = Signal(init=1)
    if board.clock == "SB_HFOSC":
        clk_in = Signal()
        m.submodules.hfosc = Instance("SB_HFOSC", p_CLKHF_DIV="0b00", i_CLKHFEN=1,
                                      i_CLKHFPU=1, o_CLKHF=clk_in)
    elif board.family == "ice40" and board.pll_pad and abs(f_out - board.clock_hz) >= 1:
        clk_in = None                  # the PLL takes the clock straight from its pad
        pad = platform.request(board.clock, 0, dir="-")
    else:
        m.submodules.clk_buffer = clk_buffer = io.Buffer(
            "i", platform.request(board.clock, 0, dir="-"))
        clk_in = clk_buffer.i

    if abs(f_out - board.clock_hz) < 1:
        m.d.comb += cd.clk.eq(clk_in)
        f = board.clock_hz
        if board.clock != "SB_HFOSC":
            m.submodules.reset_sync = ResetSynchronizer(~locked, domain="sync")
            return f            # the platform already constrains the clock pin
    elif board.family == "ice40":
        pll = ice40_pll(board.clock_hz, f_out)
        locked = Signal()
        common = dict(
            p_FEEDBACK_PATH="SIMPLE",
            p_DIVR=pll.params["DIVR"], p_DIVF=pll.params["DIVF"], p_DIVQ=pll.params["DIVQ"],
            p_FILTER_RANGE=pll.params["FILTER_RANGE"],
            i_RESETB=1, i_BYPASS=0, o_PLLOUTGLOBAL=cd.clk, o_LOCK=locked)
        if clk_in is None:
            m.submodules.pll = Instance("SB_PLL40_PAD", i_PACKAGEPIN=pad.io, **common)
        else:
            m.submodules.pll = Instance("SB_PLL40_CORE", p_PLLOUT_SELECT="GENCLK",
                                        i_REFERENCECLK=clk_in, **common)
        f = pll.f_out
    else:
        pll = ecp5_pll(board.clock_hz, f_out)
        locked = Signal()
        op_div = pll.params["CLKOP_DIV"]
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{board.clock_hz / 1e6:g}",
            a_FREQUENCY_PIN_CLKOP=f"{pll.f_out / 1e6:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA",
            p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=op_div, p_CLKOP_CPHASE=op_div - 1,
            p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
            p_CLKI_DIV=pll.params["CLKI_DIV"], p_CLKFB_DIV=pll.params["CLKFB_DIV"],
            i_CLKI=clk_in, i_CLKFB=cd.clk, i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0,
            i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0,
            o_CLKOP=cd.clk, o_LOCK=locked)
        f = pll.f_out
    m.submodules.reset_sync = ResetSynchronizer(~locked, domain="sync")
    platform.add_clock_constraint(cd.clk, f)
    if link_domain:
        if clk_in is None or board.clock == "SB_HFOSC":
            raise ValueError(f"{board.name}: no clock pin for a {link_domain!r} domain")
        link = ClockDomain(link_domain)
        m.domains += link
        m.d.comb += link.clk.eq(clk_in)
        m.submodules[f"reset_sync_{link_domain}"] = ResetSynchronizer(~locked,
                                                                       domain=link_domain)
    return f
