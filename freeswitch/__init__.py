"""Everything that talks to FreeSWITCH as FreeSWITCH: ESL call control and a FreeSWITCH simulator."""
