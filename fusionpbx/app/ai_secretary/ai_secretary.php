<?php
/*
	Opens the AI secretary console for the signed-in FusionPBX user's domain: no second login. The page mints
	a short-lived signed token (resources/functions/console_token.php) and posts it to the service, which
	opens a console session for this domain (or every domain, for a user with ai_secretary_all).
*/

//includes files
	require_once dirname(__DIR__, 2) . "/resources/require.php";
	require_once "resources/check_auth.php";
	require_once __DIR__ . "/resources/functions/console_token.php";

//check permissions
	if (!permission_exists('ai_secretary_view')) {
		echo "access denied";
		exit;
	}

//add multi-lingual support
	$language = new text;
	$text = $language->get();

//a default setting of this app: the settings class (FusionPBX 5.x), else the session copy (older)
	function ai_secretary_setting($subcategory, $default) {
		if (class_exists('settings')) {
			$settings = new settings(['domain_uuid' => $_SESSION['domain_uuid'], 'user_uuid' => $_SESSION['user_uuid']]);
			$value = $settings->get('ai_secretary', $subcategory, $default);
		}
		else {
			$value = $_SESSION['ai_secretary'][$subcategory]['text'] ?? $_SESSION['ai_secretary'][$subcategory]['numeric'] ?? $default;
		}
		return ($value === null || $value === '') ? $default : $value;
	}

//the key shared with the service, from a file only the web server reads
	$service_url = rtrim(ai_secretary_setting('service_url', 'http://127.0.0.1:8087'), '/');
	$key_file = ai_secretary_setting('token_key_file', '/etc/fusionpbx/ai_secretary.key');
	$secret = is_readable($key_file) ? trim(file_get_contents($key_file)) : '';

//show the content
	$document['title'] = $text['title-ai_secretary'];
	require_once "resources/header.php";
	echo "<div class='action_bar' id='action_bar'><div class='heading'><b>".escape($text['title-ai_secretary'])."</b></div><div style='clear: both;'></div></div>\n";
	if ($secret === '') {
		echo "<p>".escape($text['message-no_key'])."</p>\n";
	}
	else {
		$scope = permission_exists('ai_secretary_all') ? 'superadmin' : 'domain';
		$lifetime = (int) ai_secretary_setting('token_lifetime', 60);
		$token = ai_secretary_console_token($secret, $_SESSION['domain_uuid'], $_SESSION['username'], $scope, $lifetime, time());
		echo "<form id='ai_secretary_open' method='post' action='".escape($service_url)."/console/fusionpbx'>\n";
		echo "	<input type='hidden' name='token' value='".escape($token)."'>\n";
		echo "	<p>".escape($text['description-ai_secretary'])."</p>\n";
		echo "	<button type='submit' class='btn btn-default'>".escape($text['button-open'])."</button>\n";
		echo "</form>\n";
		echo "<script>document.getElementById('ai_secretary_open').submit();</script>\n";
	}
	require_once "resources/footer.php";

?>
