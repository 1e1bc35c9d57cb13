import WirebeatCLI

WirebeatCommand.main()
