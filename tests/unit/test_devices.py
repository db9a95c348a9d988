import os
import shutil

import pytest

from components.mcu_size_gate import devices

SHIPPED = {"nano33ble_sense", "nucleo_l4r5zi", "nucleo_h743zi2", "pico", "esp32s3_devkitc", "sparkfun_edge",
           "alif_e7_hp"}


def test_shipped_catalogue_is_valid_and_covers_the_reference_boards():
    catalogue = devices.load_catalogue()
    assert set(catalogue) == SHIPPED
    cores = {p.core for p in catalogue.values()}
    assert {"cortex-m0plus", "cortex-m4f", "cortex-m7", "cortex-m55", "xtensa-lx7"} <= cores
    nano = catalogue["nano33ble_sense"]
    assert nano.flash_bytes == 1024 * 1024 and nano.ram_bytes == 256 * 1024 and nano.clock_mhz == 64
    assert nano.ram_available_bytes == (256 - 96) * 1024
    for profile in catalogue.values():
        assert profile.sources and 0 < profile.ram_available_bytes < profile.ram_bytes


def _user_dir(tmp_path, text, name="myboard"):
    folder = tmp_path / "boards"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.yaml").write_text(text)
    return str(folder)


GOOD = open(os.path.join(devices.SHIPPED_DIR, "pico.yaml")).read().replace("name: pico", "name: myboard")


def test_a_user_adds_a_board_by_adding_a_file(tmp_path):
    catalogue = devices.load_catalogue([_user_dir(tmp_path, GOOD)])
    assert devices.get_profile("myboard", catalogue).mcu == "RP2040"


@pytest.mark.parametrize("old,new,field", [
    ("ram_kib: 264", "ram_kib: lots", "ram_kib"),
    ("core: cortex-m0plus", "core: pentium", "core"),
    ("clock_mhz: 133", "clock_mhz: -1", "clock_mhz"),
    ("  ram_kib: 48", "  ram_kb: 48", "reserved"),
])
def test_a_malformed_profile_names_the_field(tmp_path, old, new, field):
    folder = _user_dir(tmp_path, GOOD.replace(old, new))
    with pytest.raises(devices.DeviceProfileError, match=f"myboard.yaml: field '{field}'"):
        devices.load_catalogue([folder])


def test_name_must_match_file_and_be_unique(tmp_path):
    with pytest.raises(devices.DeviceProfileError, match="file is named other.yaml"):
        devices.load_catalogue([_user_dir(tmp_path, GOOD, name="other")])
    clash = tmp_path / "clash"
    clash.mkdir()
    shutil.copy(os.path.join(devices.SHIPPED_DIR, "pico.yaml"), clash / "pico.yaml")
    with pytest.raises(devices.DeviceProfileError, match="reuses the name 'pico'"):
        devices.load_catalogue([str(clash)])


def test_unknown_board_lists_the_known_ones():
    with pytest.raises(devices.DeviceProfileError, match="Unknown board 'arduino_uno'.*nano33ble_sense"):
        devices.get_profile("arduino_uno", devices.load_catalogue())


def test_budgets_add_the_reserve_and_respect_the_largest_ram_bank():
    catalogue = devices.load_catalogue()
    l4r5, nano = catalogue["nucleo_l4r5zi"], catalogue["nano33ble_sense"]
    small, large = devices.budgets(50_000, 100 * 1024, [l4r5, nano], code_bytes=70_000)
    assert small.ram_used == 100 * 1024 + l4r5.reserved_ram_bytes
    assert small.flash_used == 50_000 + 70_000 + l4r5.reserved_flash_bytes
    assert small.fits and large.fits
    # 200 KiB of arena fits the L4R5's 640 KiB of RAM in total but not its largest bank (SRAM1, 192 KiB)
    (too_big,) = devices.budgets(50_000, 200 * 1024, [l4r5])
    assert too_big.ram_used < l4r5.ram_bytes and not too_big.arena_fits_region and not too_big.fits
    (too_much_ram,) = devices.budgets(50_000, 200 * 1024, [nano])  # 200 + 96 reserve > 256
    assert not too_much_ram.fits


MEASURED = """measured_op_cycles:
  engine: TFLite Micro + CMSIS-NN
  source: MicroProfiler log of model.tflite
  cycles_per_unit: {conv_2d: 6.5, depthwise_conv_2d: 7.25}
  spread: 0.04
"""


def test_a_profile_may_carry_cycles_measured_on_the_board(tmp_path):
    profile = devices.get_profile("myboard", devices.load_catalogue([_user_dir(tmp_path, GOOD + MEASURED)]))
    assert profile.measured_op_cycles.cycles_per_unit == {"conv_2d": 6.5, "depthwise_conv_2d": 7.25}
    assert profile.measured_op_cycles.spread == 0.04


@pytest.mark.parametrize("old,new,field", [
    ("conv_2d: 6.5", "conv_3d: 6.5", "measured_op_cycles.cycles_per_unit"),
    ("conv_2d: 6.5", "conv_2d: -1", "measured_op_cycles.cycles_per_unit.conv_2d"),
    ("  spread: 0.04\n", "", "measured_op_cycles"),
])
def test_malformed_measured_cycles_name_the_field(tmp_path, old, new, field):
    folder = _user_dir(tmp_path, GOOD + MEASURED.replace(old, new))
    with pytest.raises(devices.DeviceProfileError, match=f"myboard.yaml: field '{field}'"):
        devices.load_catalogue([folder])


def test_each_board_may_need_its_own_arena():
    catalogue = devices.load_catalogue()
    l4r5, alif = catalogue["nucleo_l4r5zi"], catalogue["alif_e7_hp"]
    plain, helium = devices.budgets(50_000, 100_000, [l4r5, alif], arena_by_board={"alif_e7_hp": 104_512})
    assert plain.arena_bytes == 100_000 and plain.ram_used == 100_000 + l4r5.reserved_ram_bytes
    assert helium.arena_bytes == 104_512 and helium.ram_used == 104_512 + alif.reserved_ram_bytes
