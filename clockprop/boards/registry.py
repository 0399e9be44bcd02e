"""The boards that clockprop builds for: platform, device resources, clocks and pins.

Each :class:`Board` names an amaranth-boards platform class, the capacity of its FPGA (for the
fit check of :mod:`clockprop.boards.fit`), the clock it arrives with, the clock the board top
runs the pipeline at (through a PLL), and where its UART and LEDs are.
"""

import importlib
from dataclasses import dataclass, field

from ..core.errors import ClockpropError

__all__ = ["Capacity", "Board", "BOARDS", "get_board", "board_names"]


@dataclass(frozen=True)
class Capacity:
    """What one FPGA offers.

    ``ebr_bits`` is the size of one block RAM (iCE40 EBR: 4 kbit; ECP5 DP16KD: 18 kbit);
    ``ebr_shapes`` the ``(depth, width)`` configurations a block can take.
    """
    device: str
    lut: int
    ff: int
    ebr: int
    dsp: int
    ebr_bits: int
    ebr_shapes: tuple

    def to_dict(self):
        return {"device": self.device, "lut": self.lut, "ff": self.ff, "ebr": self.ebr,
                "dsp": self.dsp, "ebr_bits": self.ebr_bits}


UP5K = Capacity("iCE40UP5K", lut=5280, ff=5280, ebr=30, dsp=8, ebr_bits=4096,
                ebr_shapes=((256, 16), (512, 8), (1024, 4), (2048, 2)))
HX8K = Capacity("iCE40HX8K", lut=7680, ff=7680, ebr=32, dsp=0, ebr_bits=4096,
                ebr_shapes=((256, 16), (512, 8), (1024, 4), (2048, 2)))
_ECP5_SHAPES = ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))
ECP5_25F = Capacity("LFE5U-25F", lut=24288, ff=24288, ebr=56, dsp=28, ebr_bits=18432,
                    ebr_shapes=_ECP5_SHAPES)
ECP5_85F = Capacity("LFE5U-85F", lut=83640, ff=83640, ebr=208, dsp=156, ebr_bits=18432,
                    ebr_shapes=_ECP5_SHAPES)


@dataclass(frozen=True)
class Board:
    """One supported board.

    Parameters
    ----------
    name : str
        What the user types (``BOARD=icebreaker``).
    title : str
        Human name.
    platform : str
        ``module:Class`` of the amaranth-boards platform.
    family : str
        ``"ice40"`` or ``"ecp5"``.
    capacity : Capacity
        The FPGA's resources.
    clock : str
        Resource name of the input clock, or ``"SB_HFOSC"`` for the UP5K's internal 48 MHz
        oscillator.
    clock_hz : float
        Frequency of that clock.
    target_hz : float
        Default pipeline clock (made by the PLL; equal to ``clock_hz`` means no PLL).
    register_every : int
        Adder-tree registers for a model whose config sets none (``[hardware]
        register_every``): 1 on the ULX3S, whose 150 MHz clock one clock per layer cannot
        reach; 0 (one clock per layer) elsewhere.
    uart : dict or None
        Pins of an extra UART resource (``rx``, ``tx``, ``conn``, ``attrs``) for boards whose
        platform has none; ``None`` when the platform's ``uart`` 0 is used.
    leds : str
        ``"led"`` (a row of LEDs) or ``"rgb_led"`` (one RGB LED).
    programmer : str
        The tool that ``make program`` runs (from the platform), for messages.
    pll_pad : bool
        iCE40 only: the clock pin is the PLL's own pad, so the PLL must be SB_PLL40_PAD.
    note : str
        Wiring a user must know about.
    """
    name: str
    title: str
    platform: str
    family: str
    capacity: Capacity
    clock: str
    clock_hz: float
    target_hz: float
    leds: str = "led"
    uart: dict = field(default=None)
    register_every: int = 0
    programmer: str = "iceprog"
    pll_pad: bool = False
    note: str = ""

    def platform_class(self):
        module, _, cls = self.platform.partition(":")
        try:
            return getattr(importlib.import_module(module), cls)
        except (ImportError, AttributeError) as e:
            raise ClockpropError(f"board {self.name}: cannot load platform {self.platform} "
                                 f"({e}); install amaranth-boards") from None

    def make_platform(self):
        """An instance of the platform, with the extra UART resource added if any."""
        platform = self.platform_class()()
        if self.uart is not None:
            from amaranth.build import Attrs
            from amaranth_boards.resources import UARTResource
            platform.add_resources([UARTResource(
                0, rx=self.uart["rx"], tx=self.uart["tx"], conn=self.uart.get("conn"),
                attrs=Attrs(**self.uart["attrs"]))])
        return platform


BOARDS = {b.name: b for b in [
    Board("icebreaker", "1BitSquared iCEBreaker (iCE40UP5K)",
          "amaranth_boards.icebreaker:ICEBreakerPlatform", "ice40", UP5K,
          clock="clk12", clock_hz=12e6, target_hz=48e6, pll_pad=True,
          note="UART on the FTDI's second channel (the board's USB port)"),
    Board("upduino_v3", "tinyVision UPduino v3 (iCE40UP5K)",
          "amaranth_boards.upduino_v3:UpduinoV3Platform", "ice40", UP5K,
          clock="SB_HFOSC", clock_hz=48e6, target_hz=48e6, leds="rgb_led",
          uart={"rx": "8", "tx": "7", "conn": ("j", 0),
                "attrs": {"IO_STANDARD": "SB_LVCMOS"}},
          note="UART on header pins 23 (FPGA TX) and 25 (FPGA RX): wire a 3.3 V "
               "USB-serial adapter"),
    Board("ice40_hx8k", "Lattice iCE40-HX8K breakout (iCE40HX8K)",
          "amaranth_boards.ice40_hx8k_b_evn:ICE40HX8KBEVNPlatform", "ice40", HX8K,
          clock="clk12", clock_hz=12e6, target_hz=48e6,
          note="UART on the FTDI's second channel (jumpers J6/J7 set for UART)"),
    Board("ulx3s", "Radiona ULX3S (LFE5U-85F)",
          "amaranth_boards.ulx3s:ULX3S_85F_Platform", "ecp5", ECP5_85F,
          clock="clk25", clock_hz=25e6, target_hz=150e6, register_every=1,
          programmer="openFPGALoader",
          note="UART on the FTDI (US1 USB port)"),
    Board("orangecrab", "Good Stuff Department OrangeCrab r0.2 (LFE5U-25F)",
          "amaranth_boards.orangecrab_r0_2:OrangeCrabR0_2_25FPlatform", "ecp5", ECP5_25F,
          clock="clk", clock_hz=48e6, target_hz=100e6, leds="rgb_led", programmer="dfu-util",
          uart={"rx": "1", "tx": "0", "conn": ("io", 0),
                "attrs": {"IO_TYPE": "LVCMOS33"}},
          note="UART on feather pins 0 (FPGA TX) and 1 (FPGA RX): wire a 3.3 V "
               "USB-serial adapter"),
]}


def board_names():
    return sorted(BOARDS)


def get_board(name):
    """The :class:`Board` called ``name``; a clear error listing the known ones otherwise."""
    try:
        return BOARDS[name]
    except KeyError:
        raise ClockpropError(f"unknown board {name!r}; known boards: "
                             f"{', '.join(board_names())}") from None
