<?php

	$y = 0;
	$apps[$x]['menu'][$y]['title']['en-us'] = "AI Secretary";
	$apps[$x]['menu'][$y]['title']['en-gb'] = "AI Secretary";
	$apps[$x]['menu'][$y]['title']['de-de'] = "KI-Sekretariat";
	$apps[$x]['menu'][$y]['title']['fr-fr'] = "Secrétaire IA";
	$apps[$x]['menu'][$y]['title']['es-mx'] = "Secretaria IA";
	$apps[$x]['menu'][$y]['title']['pt-br'] = "Secretária IA";
	$apps[$x]['menu'][$y]['uuid'] = "154d6122-3528-4e89-8ac7-f7d8db949d19";
	$apps[$x]['menu'][$y]['parent_uuid'] = "fd29e39c-c936-f5fc-8e2b-611681b266b5"; //Applications
	$apps[$x]['menu'][$y]['category'] = "internal";
	$apps[$x]['menu'][$y]['icon'] = "";
	$apps[$x]['menu'][$y]['path'] = "/app/ai_secretary/ai_secretary.php";
	$apps[$x]['menu'][$y]['order'] = "";
	$apps[$x]['menu'][$y]['groups'][] = "superadmin";
	$apps[$x]['menu'][$y]['groups'][] = "admin";
	$y++;

?>
