"""Instruction timing of the Cortex-M cores as data: one `CoreTiming` per core (cycles of each instruction class,
the branch refill, the pipelining rules it has) and a `Memory` model of instruction fetch (flash wait states, an
ART-style prefetch buffer and cache). Sources and choices are in the notes of each table and in README.md."""

from __future__ import annotations

from dataclasses import dataclass, field

from .isa import Kind


@dataclass(frozen=True)
class Cost:
    """Cycles of one instruction class: `base` plus `per_register` for each register LDM/STM/PUSH/POP move."""

    base: int
    per_register: int = 0

    def __post_init__(self) -> None:
        if self.base < 0 or self.per_register < 0:
            raise ValueError(f"negative cycle cost {self}")


@dataclass(frozen=True)
class Predictor:
    """A dynamic branch predictor (Cortex-M7), approximated from counts alone: a conditional branch that went
    both ways is mispredicted min(taken, not taken) times (a loop's exit, or each change of direction); predicted
    direct branches cost nothing extra; indirect ones (BX, POP {pc}, LDR pc, TBB) pay `indirect_refill`."""

    mispredict_penalty: int
    indirect_refill: int


@dataclass(frozen=True)
class DualIssue:
    """Pairs of neighbouring instruction classes that issue in the same cycle when the second reads nothing the
    first writes (Cortex-M7); each member of a pair must be a one-cycle instruction."""

    pairs: frozenset[tuple[Kind, Kind]]


@dataclass(frozen=True)
class CoreTiming:
    """One core's timing table and pipeline rules, for zero-wait-state memory."""

    name: str
    costs: tuple[tuple[Kind, Cost], ...]
    refill: int  # P: cycles to refill the pipeline after a taken branch or other write of the PC
    refill_unaligned_wide: int  # extra refill when the target is a 32-bit instruction at a halfword address
    load_pc_extra: int  # POP {.., pc} / LDR pc beyond LDM + refill (the M0's "POP and return" is 4+N)
    load_store_pipelining: bool  # neighbouring single LDR/STR overlap: the second and later take one cycle less
    address_interlock: bool  # a load/store whose address register the previous ALU op wrote waits one cycle
    dual_issue: DualIssue | None = None
    predictor: Predictor | None = None
    notes: str = ""
    _table: dict = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        table = dict(self.costs)
        missing = [k.value for k in Kind if k not in table]
        if missing:
            raise ValueError(f"{self.name}: no cycle cost for {', '.join(missing)}")
        object.__setattr__(self, "_table", table)

    def cost(self, kind: Kind) -> Cost:
        return self._table[kind]


@dataclass(frozen=True)
class Memory:
    """Instruction fetch from flash: `wait_states` per 32-bit fetch (0: zero-wait SRAM/TCM, what QEMU's boards
    have). Without an accelerator every refill pays them and a block's fetch bound is words x (1 + wait states);
    with an ART-style accelerator (prefetch buffer + instruction cache, e.g. STM32L4R5 at 120 MHz with 5 wait
    states) sequential fetches are hidden by the prefetch and a block is fetched from flash only the first time
    it runs (later runs hit the cache). Data loads are timed as from zero-wait RAM either way (the log gives no
    data addresses)."""

    wait_states: int = 0
    accelerator: bool = False

    def __post_init__(self) -> None:
        if self.wait_states < 0:
            raise ValueError(f"negative flash wait states: {self.wait_states}")


ZERO_WAIT = Memory()
_DATA_PROCESSING = (Kind.ALU, Kind.IT, Kind.MUL, Kind.MAC)

CORTEX_M0 = CoreTiming(
    "Cortex-M0",
    ((Kind.ALU, Cost(1)), (Kind.IT, Cost(1)), (Kind.MUL, Cost(1)), (Kind.MUL_LONG, Cost(1)), (Kind.MAC, Cost(1)),
     (Kind.DIV, Cost(1)), (Kind.LOAD, Cost(2)), (Kind.STORE, Cost(2)), (Kind.LOAD_DOUBLE, Cost(1, 1)),
     (Kind.STORE_DOUBLE, Cost(1, 1)), (Kind.LOAD_MULTIPLE, Cost(1, 1)), (Kind.STORE_MULTIPLE, Cost(1, 1)),
     (Kind.BRANCH, Cost(1)), (Kind.BRANCH_LINK, Cost(2)), (Kind.COMPARE_BRANCH, Cost(1)),
     (Kind.TABLE_BRANCH, Cost(2)), (Kind.SYSTEM, Cost(4))),
    refill=2, refill_unaligned_wide=0, load_pc_extra=1, load_store_pipelining=False, address_interlock=False,
    notes="Cortex-M0 TRM instruction summary: ALU 1; MULS 1 (the fast-multiplier option; 32 with the small "
          "one); LDR/STR 2; LDM/STM/PUSH/POP 1+N; B<cc> 3 taken, 1 not; B and BX 3; BL 4; POP {..,pc} 4+N; "
          "MRS/MSR/barriers 4. ARMv6-M has no IT, CBZ, DSP, long multiply or divide: those rows are unused.",
)

CORTEX_M4 = CoreTiming(
    "Cortex-M4",
    ((Kind.ALU, Cost(1)), (Kind.IT, Cost(1)), (Kind.MUL, Cost(1)), (Kind.MUL_LONG, Cost(1)), (Kind.MAC, Cost(1)),
     (Kind.DIV, Cost(12)), (Kind.LOAD, Cost(2)), (Kind.STORE, Cost(2)), (Kind.LOAD_DOUBLE, Cost(1, 1)),
     (Kind.STORE_DOUBLE, Cost(1, 1)), (Kind.LOAD_MULTIPLE, Cost(1, 1)), (Kind.STORE_MULTIPLE, Cost(1, 1)),
     (Kind.BRANCH, Cost(1)), (Kind.BRANCH_LINK, Cost(1)), (Kind.COMPARE_BRANCH, Cost(1)),
     (Kind.TABLE_BRANCH, Cost(3)), (Kind.SYSTEM, Cost(1))),
    refill=1, refill_unaligned_wide=1, load_pc_extra=0, load_store_pipelining=True, address_interlock=True,
    notes="Cortex-M4 TRM instruction summary: ALU, MUL/MLA/MLS, SMULL/UMULL/SMLAL/UMLAL and every DSP multiply "
          "(SMLAD, SMULBB, SMLABB, SMMLA ...) 1; SDIV/UDIV 2..12 by operand size, timed 12 (the worst case, so "
          "the model's error on division is one-sided); LDR/STR 2, 1 when it follows a single LDR/STR whose "
          "loaded register it does not address with (not after a register-offset store); LDRD/STRD 3; "
          "LDM/STM/PUSH/POP 1+N; taken branch 1+P with P = 1, 2 when the target is a 32-bit instruction at a "
          "halfword address (plus flash wait states); B<cc>/CBZ not taken 1; TBB/TBH 2+P+1 (load, add, refill); "
          "a load/store addressed by the register the previous data-processing instruction wrote waits 1; IT 1 "
          "(folding not modelled); IT-skipped instructions timed as executed.",
)

_M7_SINGLE = (Kind.ALU, Kind.IT, Kind.MUL, Kind.MAC, Kind.LOAD, Kind.STORE)
CORTEX_M7 = CoreTiming(
    "Cortex-M7",
    ((Kind.ALU, Cost(1)), (Kind.IT, Cost(1)), (Kind.MUL, Cost(1)), (Kind.MUL_LONG, Cost(1)), (Kind.MAC, Cost(1)),
     (Kind.DIV, Cost(12)), (Kind.LOAD, Cost(1)), (Kind.STORE, Cost(1)), (Kind.LOAD_DOUBLE, Cost(1)),
     (Kind.STORE_DOUBLE, Cost(1)), (Kind.LOAD_MULTIPLE, Cost(0, 1)), (Kind.STORE_MULTIPLE, Cost(0, 1)),
     (Kind.BRANCH, Cost(1)), (Kind.BRANCH_LINK, Cost(1)), (Kind.COMPARE_BRANCH, Cost(1)),
     (Kind.TABLE_BRANCH, Cost(2)), (Kind.SYSTEM, Cost(1))),
    refill=0, refill_unaligned_wide=0, load_pc_extra=0, load_store_pipelining=False, address_interlock=False,
    dual_issue=DualIssue(frozenset(
        {(a, b) for a in (Kind.ALU, Kind.IT) for b in _M7_SINGLE}
        | {(a, b) for a in _M7_SINGLE for b in (Kind.ALU,)}
        | {(Kind.LOAD, Kind.LOAD), (Kind.LOAD, Kind.STORE), (Kind.STORE, Kind.LOAD)}
        | {(a, b) for a in _M7_SINGLE for b in (Kind.BRANCH, Kind.COMPARE_BRANCH)})),
    predictor=Predictor(mispredict_penalty=6, indirect_refill=4),
    notes="Cortex-M7 (approximate: Arm publishes no cycle table for it): six-stage dual-issue pipeline with a "
          "branch predictor and zero-wait TCMs. Modelled: every one-cycle class issues in one cycle; two "
          "neighbours dual-issue when the pair is listed (ALU with ALU, load/store or multiply; two loads or a "
          "load and a store; anything one-cycle followed by a branch) and the second reads no register the "
          "first writes; one multiply per cycle; LDM/STM one register per cycle; a loaded register used by the "
          "next instruction costs 1 cycle (load-use); SDIV/UDIV 12; mispredicted conditional branches "
          "(min(taken, not taken) per branch) cost 6, indirect branches 4, predicted ones nothing; flash wait "
          "states only bound each block's fetch (the M7 runs from TCM or cache). Not modelled: the 64-bit fetch "
          "queue, cache misses, AXI wait states, shifter-operand pairing limits.",
)

TIMINGS: dict[str, CoreTiming] = {"cortex-m0": CORTEX_M0, "cortex-m4": CORTEX_M4, "cortex-m7": CORTEX_M7}
