"""Build flows around the accelerator: HDL generation (`generate`), open-toolchain synthesis
reports (`synth`), board tops and Vivado projects (`boards`, `board_gateware`), Verilog checks
(`hdl_check`), the CLI's parameter parsing (`config_args`), the demo's hardware stages
(`demo_hw`) and parameter sweeps (`sweep`)."""
