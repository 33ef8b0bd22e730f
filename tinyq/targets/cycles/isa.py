"""Thumb instructions as QEMU's `-d in_asm` log prints them (capstone syntax), decoded into what a timing table
needs: a class, the registers written and used for the address, the register count of LDM/STM/PUSH/POP, whether
the instruction writes the PC, its condition and its direct branch target. The mnemonic table is data."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class Kind(enum.Enum):
    """Timing classes: each core's table (timing.py) gives the cycles of each."""

    ALU = "alu"  # data processing, shifts, extends, saturation, SIMD add/sub, moves, IT-free single-cycle ops
    IT = "it"  # IT: one cycle (folding onto a neighbour is not modelled)
    MUL = "mul"  # MUL, MLA, MLS: 32-bit result
    MUL_LONG = "mul_long"  # SMULL, UMULL, SMLAL, UMLAL and the 64-bit-accumulate DSP multiplies
    MAC = "mac"  # the DSP multiplies with a 32-bit result: SMLAD, SMLABB, SMULBB, SMUAD, SMMLA ...
    DIV = "div"  # SDIV, UDIV
    LOAD = "load"  # LDR, LDRB, LDRH, LDRSB, LDRSH, LDREX
    STORE = "store"  # STR, STRB, STRH, STREX
    LOAD_DOUBLE = "load_double"  # LDRD
    STORE_DOUBLE = "store_double"  # STRD
    LOAD_MULTIPLE = "load_multiple"  # LDM, POP (cycles grow with the register count)
    STORE_MULTIPLE = "store_multiple"  # STM, PUSH
    BRANCH = "branch"  # B, B<cc>, BX
    BRANCH_LINK = "branch_link"  # BL, BLX
    COMPARE_BRANCH = "compare_branch"  # CBZ, CBNZ
    TABLE_BRANCH = "table_branch"  # TBB, TBH
    SYSTEM = "system"  # MRS, MSR, barriers, CPS, BKPT, SVC, WFI, NOP


def _words(kind: Kind, text: str) -> dict[str, Kind]:
    return {w: kind for w in text.split()}


_SIMD = " ".join(f"{p}{op}{w}" for p in ("s", "q", "sh", "u", "uq", "uh")
                 for op in ("add", "sub", "asx", "sax") for w in ("8", "16") if not (op in ("asx", "sax") and w == "8"))
MNEMONICS: dict[str, Kind] = {
    **_words(Kind.ALU, "add adc sub sbc rsb mov mvn and orr eor bic orn cmp cmn tst teq lsl lsr asr ror rrx neg "
                       "adr addw subw movw movt sxtb sxth uxtb uxth sxtab sxtah uxtab uxtah sxtb16 uxtb16 sxtab16 "
                       "uxtab16 bfi bfc sbfx ubfx clz rbit rev rev16 revsh ssat usat ssat16 usat16 qadd qsub qdadd "
                       "qdsub sel pkhbt pkhtb usad8 usada8 nop pld pli " + _SIMD),
    **_words(Kind.IT, " ".join("it" + "".join(s) for s in
                               ("", "t", "e", "tt", "te", "et", "ee", "ttt", "tte", "tet", "tee", "ett", "ete",
                                "eet", "eee"))),
    **_words(Kind.MUL, "mul mla mls"),
    **_words(Kind.MUL_LONG, "smull umull smlal umlal umaal smlalbb smlalbt smlaltb smlaltt smlald smlaldx smlsld "
                            "smlsldx"),
    **_words(Kind.MAC, "smulbb smulbt smultb smultt smulwb smulwt smlabb smlabt smlatb smlatt smlawb smlawt smlad "
                       "smladx smlsd smlsdx smuad smuadx smusd smusdx smmul smmulr smmla smmlar smmls smmlsr"),
    **_words(Kind.DIV, "sdiv udiv"),
    **_words(Kind.LOAD, "ldr ldrb ldrh ldrsb ldrsh ldrex ldrexb ldrexh ldrt ldrbt ldrht ldrsbt ldrsht"),
    **_words(Kind.STORE, "str strb strh strex strexb strexh strt strbt strht"),
    **_words(Kind.LOAD_DOUBLE, "ldrd"),
    **_words(Kind.STORE_DOUBLE, "strd"),
    **_words(Kind.LOAD_MULTIPLE, "ldm ldmia ldmfd ldmdb ldmea pop"),
    **_words(Kind.STORE_MULTIPLE, "stm stmia stmea stmdb stmfd push"),
    **_words(Kind.BRANCH, "b bx"),
    **_words(Kind.BRANCH_LINK, "bl blx"),
    **_words(Kind.COMPARE_BRANCH, "cbz cbnz"),
    **_words(Kind.TABLE_BRANCH, "tbb tbh"),
    **_words(Kind.SYSTEM, "mrs msr dmb dsb isb cpsid cpsie bkpt svc wfi wfe sev yield udf clrex"),
}
CONDITIONS = frozenset("eq ne cs hs cc lo mi pl vs vc hi ls ge lt gt le al".split())
NO_DESTINATION = frozenset("cmp cmn tst teq".split())  # ALU ops that only set flags
UNARY = frozenset("mov mvn movw adr uxtb uxth sxtb sxth rev rev16 revsh clz rbit neg".split())
_DESTINATION_FIRST = frozenset({Kind.ALU, Kind.MUL, Kind.MAC, Kind.DIV, Kind.LOAD, Kind.LOAD_DOUBLE})
_ALIASES = {"sb": "r9", "sl": "r10", "fp": "r11", "ip": "r12", "sp": "r13", "lr": "r14", "pc": "r15"}
_REG = re.compile(r"\b(r1[0-5]|r[0-9]|sb|sl|fp|ip|sp|lr|pc)\b")
_LINE = re.compile(r"^0x([0-9a-f]+):\s+([0-9a-f]{4})( [0-9a-f]{4})?\s+(\S+)\s*(.*)$")


@dataclass(frozen=True)
class Insn:
    """One decoded Thumb instruction."""

    address: int
    size: int  # 2 or 4 bytes
    mnemonic: str  # as printed, e.g. "ldr.w", "movne"
    base: str  # the table's mnemonic, e.g. "ldr", "mov"
    kind: Kind
    known: bool  # the mnemonic is in MNEMONICS (an unknown one is timed as ALU and reported)
    conditional: bool  # a condition code on the mnemonic (B<cc>, or inside an IT block)
    writes: frozenset[str]  # registers written (r0..r15)
    reads: frozenset[str]  # registers read (operands, address, stored registers)
    address_regs: frozenset[str]  # registers a load/store computes its address from
    registers: int  # registers transferred by LDM/STM/PUSH/POP, 2 for LDRD/STRD, else 1
    writes_pc: bool
    target: int | None  # a direct branch's target address
    register_offset: bool  # a load/store addressed [Rn, Rm]

    @property
    def next_address(self) -> int:
        return self.address + self.size


def split_mnemonic(mnemonic: str) -> tuple[str, bool, bool]:
    """(table mnemonic, conditional, known): strips the .w/.n width, a condition code and the S flag suffix."""
    m = mnemonic.lower().split(".", 1)[0]
    if m in MNEMONICS:
        return m, False, True
    stem = m[:-2] if m[-2:] in CONDITIONS else ""
    # A condition first ("bls" is B<ls>), then the S suffix ("movs"), then both ("addseq").
    for candidate, cond in ((stem, True), (m[:-1] if m.endswith("s") else "", False),
                            (stem[:-1] if stem.endswith("s") else "", True)):
        if candidate in MNEMONICS:
            return candidate, cond, True
    return m, False, False


def _regs(text: str) -> list[str]:
    return [_ALIASES.get(r, r) for r in _REG.findall(text)]


def decode(address: int, size: int, mnemonic: str, operands: str) -> Insn:
    """Decode one instruction from its mnemonic and operand text."""
    base, cond, known = split_mnemonic(mnemonic)
    kind = MNEMONICS.get(base, Kind.ALU)
    bracket = operands[operands.find("["):operands.find("]") + 1] if "[" in operands else ""
    braces = operands[operands.find("{"):operands.find("}") + 1] if "{" in operands else ""
    regs = _regs(operands.replace(bracket, "").replace(braces, ""))
    listed = _regs(braces)
    address_regs = frozenset(_regs(bracket))
    writes: set[str] = set()
    registers = 1
    if kind in (Kind.ALU, Kind.MUL, Kind.MAC, Kind.DIV, Kind.LOAD, Kind.SYSTEM) and regs \
            and base not in NO_DESTINATION and base != "msr":
        writes.add(regs[0])
    elif kind in (Kind.MUL_LONG, Kind.LOAD_DOUBLE):
        writes.update(regs[:2])
    if kind in (Kind.LOAD_DOUBLE, Kind.STORE_DOUBLE):
        registers = 2
    if kind in (Kind.LOAD_MULTIPLE, Kind.STORE_MULTIPLE):
        registers = max(1, len(listed))
        if kind is Kind.LOAD_MULTIPLE:
            writes.update(listed)
        if "!" in operands or base in ("push", "pop"):
            writes.add("r13" if base in ("push", "pop") else regs[0])
    if bracket and ("!" in operands or operands[operands.find("]") + 1:].strip(", ")):
        writes.update(_regs(bracket)[:1])  # pre- or post-indexed writeback of the base register
    if kind is Kind.BRANCH_LINK:
        writes.add("r14")
    target = None
    if kind in (Kind.BRANCH, Kind.BRANCH_LINK, Kind.COMPARE_BRANCH) and "#" in operands:
        target = int(operands.rsplit("#", 1)[1], 0)
    writes_pc = kind in (Kind.BRANCH, Kind.BRANCH_LINK, Kind.COMPARE_BRANCH, Kind.TABLE_BRANCH) or "r15" in writes
    reads = set(regs[1:]) | set(listed if kind is Kind.STORE_MULTIPLE else ())
    if regs and (kind not in _DESTINATION_FIRST or base in NO_DESTINATION
                 or (operands.count(",") == 1 and base not in UNARY and kind is not Kind.LOAD)):
        reads.add(regs[0])  # a store's data, a compare's operand, the accumulator of a two-operand form
    return Insn(address, size, mnemonic, base, kind, known, cond or kind is Kind.COMPARE_BRANCH,
                frozenset(writes - {"r15"}), frozenset(reads | address_regs), address_regs, registers, writes_pc,
                target, bool(bracket) and len(address_regs) > 1)


def parse_line(line: str) -> Insn | None:
    """One instruction line of the in_asm log (`0x00000058:  2100       movs     r1, #0`), or None."""
    m = _LINE.match(line)
    if m is None:
        return None
    return decode(int(m.group(1), 16), 4 if m.group(3) else 2, m.group(4), m.group(5).strip())
