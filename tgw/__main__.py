from tgw.cli import main

main()
