<?php
/*
	AI Secretary for FusionPBX: opens the voiceai-secretary web console for the signed-in user's domain.
	The app's uuid is the one the service writes into v_dialplans.app_uuid for the secretary's dialplan rows,
	so FusionPBX lists those rows (and the destinations below) as this app's.
*/

	//application details
		$apps[$x]['name'] = "AI Secretary";
		$apps[$x]['uuid'] = "5ec2e7a1-a1d0-4c2e-9b6f-7f3c0a1e5e01";
		$apps[$x]['category'] = "Switch";
		$apps[$x]['subcategory'] = "";
		$apps[$x]['version'] = "1.0";
		$apps[$x]['license'] = "MIT";
		$apps[$x]['url'] = "";
		$apps[$x]['description']['en-us'] = "A voice-AI secretary per domain: greeting, hours, directory, knowledge, calls and messages.";
		$apps[$x]['description']['de-de'] = "Ein KI-Sekretariat pro Domain: Begrüßung, Zeiten, Verzeichnis, Wissen, Anrufe und Nachrichten.";

	//destinations: a domain's secretary numbers in the Inbound Route, IVR and time condition pickers, as the
	//group "AI Secretary". How FusionPBX 5.x's app/destinations/resources/classes/destinations.php reads a block:
	//  name: the permission it needs, singular(name)."_destinations" (so ai_secretary_destinations, granted below),
	//        and the group's title, $text['title-<name>'] from app/<name>/app_languages.php (so it must be this
	//        app's folder name); without "sql" it would also be the table, v_<name>
	//  label: the key the options are sorted and validated under (an inbound route's action must be one of them)
	//  sql + where + " order by " + order_by, with ${domain_uuid} replaced by the domain's uuid
	//  field: each key is a placeholder, ${key}, filled from the result column named key (so the query
	//        names its columns after the keys); select_value[<picker type>] is the action written, select_label
	//        what the admin reads; ${domain_name} and ${context} become the domain's name
	//No uuid column is selected: the dynamic picker's edit button would open app/<name>/<name>_edit.php?id=…
	//Listed once: FusionPBX's own "dialplans" block lists every v_dialplans row with dialplan_destination true.
	//The service sets that flag only while this app is not installed (no ai_secretary default settings: the
	//number must still be pickable); with the app it leaves it false and the number is listed here. A row
	//flagged before the app came stays in FusionPBX's Dialplan group, hence the last condition (::text: the
	//column is text in 5.4 and boolean from 5.5 on).
		$y = 0;
		$apps[$x]['destinations'][$y]['type'] = "sql";
		$apps[$x]['destinations'][$y]['label'] = "ai_secretary";
		$apps[$x]['destinations'][$y]['name'] = "ai_secretary";
		$apps[$x]['destinations'][$y]['sql'] = "select dialplan_number as destination, dialplan_description as description from v_dialplans ";
		$apps[$x]['destinations'][$y]['where'] = "where domain_uuid = '\${domain_uuid}' and app_uuid = '5ec2e7a1-a1d0-4c2e-9b6f-7f3c0a1e5e01' and dialplan_enabled = 'true' and dialplan_number <> '' and coalesce(dialplan_destination::text, '') <> 'true' ";
		$apps[$x]['destinations'][$y]['order_by'] = "dialplan_number asc";
		$apps[$x]['destinations'][$y]['field']['destination'] = "destination";
		$apps[$x]['destinations'][$y]['field']['description'] = "description";
		$apps[$x]['destinations'][$y]['select_value']['dialplan'] = "transfer:\${destination} XML \${domain_name}";
		$apps[$x]['destinations'][$y]['select_value']['ivr'] = "menu-exec-app:transfer \${destination} XML \${domain_name}";
		$apps[$x]['destinations'][$y]['select_label'] = "\${destination} \${description}";

	//default settings: where the service's admin listener is, and the file with the key shared with it
		$y = 0;
		$apps[$x]['default_settings'][$y]['default_setting_uuid'] = "5179ef6a-9db9-4729-8cf4-fcfd43ecfa9a";
		$apps[$x]['default_settings'][$y]['default_setting_category'] = "ai_secretary";
		$apps[$x]['default_settings'][$y]['default_setting_subcategory'] = "service_url";
		$apps[$x]['default_settings'][$y]['default_setting_name'] = "text";
		$apps[$x]['default_settings'][$y]['default_setting_value'] = "http://127.0.0.1:8087";
		$apps[$x]['default_settings'][$y]['default_setting_enabled'] = "true";
		$apps[$x]['default_settings'][$y]['default_setting_description'] = "The service's admin listener, as the admin's browser reaches it (https behind a proxy).";
		$y++;
		$apps[$x]['default_settings'][$y]['default_setting_uuid'] = "4ed022bc-e1f2-4484-93e8-e13f7f5b4c37";
		$apps[$x]['default_settings'][$y]['default_setting_category'] = "ai_secretary";
		$apps[$x]['default_settings'][$y]['default_setting_subcategory'] = "token_key_file";
		$apps[$x]['default_settings'][$y]['default_setting_name'] = "text";
		$apps[$x]['default_settings'][$y]['default_setting_value'] = "/etc/fusionpbx/ai_secretary.key";
		$apps[$x]['default_settings'][$y]['default_setting_enabled'] = "true";
		$apps[$x]['default_settings'][$y]['default_setting_description'] = "File holding the key the service knows as admin.console.fusionpbx_secret (readable by the web server only).";
		$y++;
		$apps[$x]['default_settings'][$y]['default_setting_uuid'] = "fb8748ce-8b30-4aee-b19f-20d2c631a6f7";
		$apps[$x]['default_settings'][$y]['default_setting_category'] = "ai_secretary";
		$apps[$x]['default_settings'][$y]['default_setting_subcategory'] = "token_lifetime";
		$apps[$x]['default_settings'][$y]['default_setting_name'] = "numeric";
		$apps[$x]['default_settings'][$y]['default_setting_value'] = "60";
		$apps[$x]['default_settings'][$y]['default_setting_enabled'] = "true";
		$apps[$x]['default_settings'][$y]['default_setting_description'] = "Seconds a sign-in token is valid (the service accepts at most admin.console.token_max_age_s).";

	//permission details
		$y = 0;
		$apps[$x]['permissions'][$y]['name'] = "ai_secretary_view";
		$apps[$x]['permissions'][$y]['menu']['uuid'] = "154d6122-3528-4e89-8ac7-f7d8db949d19";
		$apps[$x]['permissions'][$y]['groups'][] = "superadmin";
		$apps[$x]['permissions'][$y]['groups'][] = "admin";
		$y++;
		$apps[$x]['permissions'][$y]['name'] = "ai_secretary_all";
		$apps[$x]['permissions'][$y]['groups'][] = "superadmin";
		$y++;
		$apps[$x]['permissions'][$y]['name'] = "ai_secretary_destinations";  //the destinations block's group
		$apps[$x]['permissions'][$y]['groups'][] = "superadmin";
		$apps[$x]['permissions'][$y]['groups'][] = "admin";

?>
